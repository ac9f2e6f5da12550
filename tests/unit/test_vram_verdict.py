"""The operator's reading of a VRAM estimate (operator/vram.py): the llama.cpp flags it takes
from the rendered args, the verdict on a spec, what would fit a model no card holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hearth_api import footprint, gguf_header
from hearth_api.gpus import GpuNode
from hearth_api.model_deployment import ModelDeployment, Reason
from hearth_operator import engines, vram
from hearth_sim import synthetic_gguf

NODES = [GpuNode("gpu-3070", "rtx3070", 8), GpuNode("gpu-3090", "rtx3090", 24)]


@pytest.fixture(scope="module")
def qwen14b() -> footprint.ModelShape:
    path: Path = synthetic_gguf.cached("qwen2.5-14b", "Q4_K_M")
    with path.open("rb") as f:
        return footprint.shape_of_gguf(gguf_header.parse(f.read(8 << 20)))


def md(vram_gib: int | None = None, **spec: Any) -> ModelDeployment:
    gpu: dict[str, Any] = {"class": "any"} | ({"vramGiB": vram_gib} if vram_gib else {})
    body = {
        "metadata": {"name": "qwen", "namespace": "default"},
        "spec": {"model": "qwen2.5-14b", "engine": "llamacpp", "gpu": gpu,
                 "modelSource": {"uri": "hf://Qwen/Qwen2.5-14B-Instruct-GGUF/q4_k_m.gguf"}, **spec},
    }  # fmt: skip
    return ModelDeployment.model_validate(body)


def with_estimate(m: ModelDeployment, shape: footprint.ModelShape) -> ModelDeployment:
    estimated = vram.estimate(m, shape, "hf://Qwen/…/q4_k_m.gguf")
    return m.model_copy(update={"status": m.status.model_copy(update={"vram": estimated})})


def test_the_settings_are_read_back_from_the_args_the_engine_gets() -> None:
    s = vram.llamacpp_settings(engines.args(md(contextLength=8192, concurrency=2).spec), 32768)
    assert (s.ctx_size, s.parallel, s.gpu_layers, s.cache_type_k) == (16384, 2, 99, "f16")
    own = [
        "-m",
        "/models/x.gguf",
        "--ctx-size=2048",
        "-np",
        "3",
        "-ctk",
        "q8_0",
        "-ctv",
        "q8_0",
        "-ngl",
        "20",
    ]
    s = vram.llamacpp_settings(engines.args(md(args=own).spec), 32768)
    assert (s.ctx_size, s.parallel, s.gpu_layers, s.cache_type_k, s.cache_type_v) == (
        2048,
        3,
        20,
        "q8_0",
        "q8_0",
    )
    # No -c (or -c 0): llama-server takes the model's trained context.
    assert vram.llamacpp_settings(["-m", "x.gguf"], 32768).ctx_size == 32768


def test_a_spec_below_the_estimate_gets_a_warning_with_the_numbers(qwen14b: footprint.ModelShape) -> None:
    m = with_estimate(md(8, contextLength=8192, concurrency=2), qwen14b)
    assert m.vram_gib == m.status.vram.total_gib > 8  # type: ignore[union-attr]
    verdict = vram.verdict(m)
    ok, reason, message = verdict.condition
    assert ok and reason is Reason.SPEC_BELOW_ESTIMATE and verdict.warning == message
    assert message.startswith("qwen2.5-14b needs 11.") and "8192 context x 2 slots" in message
    assert "the spec says 8 GiB" in message
    roomy = with_estimate(md(16, contextLength=8192, concurrency=2), qwen14b)
    assert roomy.vram_gib == 16 and vram.verdict(roomy).warning is None  # the spec reserves more: kept


def test_what_fits_names_the_context_for_each_card_that_could(qwen14b: footprint.ModelShape) -> None:
    m = with_estimate(md(contextLength=65536), qwen14b)
    hint = vram.what_fits(m, NODES)
    assert "fits the 3090 with contextLength ≤ " in hint and "3070" not in hint
    only_3070 = with_estimate(md(contextLength=65536, gpu={"class": "rtx3070"}), qwen14b)
    assert "no context length makes it fit" in vram.what_fits(only_3070, NODES)


def test_a_model_without_a_readable_source_needs_vram_in_its_spec() -> None:
    with pytest.raises(ValueError, match=r"gpu\.vramGiB is required"):
        ModelDeployment.model_validate(
            {"metadata": {"name": "a"}, "spec": {"model": "a", "engine": "sim", "gpu": {"class": "any"}}}
        )

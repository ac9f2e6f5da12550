"""VRAM learned from the weights, end to end: the operator reads an hf:// GGUF's header from the
homelab's hub (Range requests, before any download), places by the estimate, warns when the
spec reserves less, refuses a model no card can hold before a byte of its weights moves, and
names the file when a header is not what it claims."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hearth_api import gguf_header
from hearth_sim import synthetic_gguf
from hearth_sim.homelab import HomelabThread
from hearth_sim.hub import Hosted, OllamaModel, Repo
from hearth_sim.kube import Kube

from .conftest import eventually, smollm2_or_skip
from .operator_helpers import MD_API, OperatorProcess, downloading_operator, sim_md, status, wait_phase, wake

MiB = 1 << 20
SMOL = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return smollm2_or_skip()


@pytest.fixture(scope="module")
def operator(homelab: HomelabThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    homelab.homelab.hub.rate = 100 * MiB
    # The hub serves registry.ollama.ai's API too.
    op = downloading_operator(
        homelab, tmp_path_factory.mktemp("operator"), ollama_registry=homelab.homelab.hub_url
    )
    yield op
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-4000:]


def llamacpp_md(name: str, uri: str, vram: int | None = None, **spec: Any) -> dict[str, Any]:
    gpu: dict[str, Any] = {"class": "any"}
    if vram is not None:
        gpu["vramGiB"] = vram
    return {
        "apiVersion": MD_API,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": name,
            "engine": "llamacpp",
            "modelSource": {"uri": uri},
            "gpu": gpu,
            "scaling": {"minReplicas": 0, "idleTimeoutSeconds": 300},
            **spec,
        },
    }


async def estimated(kube: Kube, name: str) -> dict[str, Any]:
    """The model's status once the operator has judged its headers (an estimate, or why not)."""

    async def judged() -> dict[str, Any] | None:
        st = await status(kube, name)
        return st if st.get("vram") or condition(st) else None

    return await eventually(judged, deadline=30, what=f"{name}'s VRAM estimate")


async def events_for(kube: Kube, name: str) -> list[dict[str, Any]]:
    items = (await kube.list("v1", "events", "default"))["items"]
    return [e for e in items if (e.get("involvedObject") or {}).get("name") == name]


def condition(st: dict[str, Any], ctype: str = "VramEstimated") -> dict[str, Any]:
    return next((c for c in st.get("conditions") or [] if c["type"] == ctype), {})


async def test_a_spec_below_the_estimate_is_placed_by_the_estimate_with_a_warning(
    kube: Kube, homelab: HomelabThread, operator: OperatorProcess, smollm2: Path
) -> None:
    homelab.homelab.hub.repos["acme/smol-GGUF"] = Repo({SMOL: Hosted.on_disk(smollm2)})
    # The 3070 is kept 7 of 8 GiB full by a pinned model: 1 GiB left, which the spec's guess fits.
    await kube.create(
        MD_API,
        "modeldeployments",
        "default",
        sim_md("filler", vram=7, gpu_class="rtx3070", scaling={"minReplicas": 1, "maxReplicas": 1}),
    )
    await wait_phase(kube, "filler", "Warm", deadline=30)
    md = llamacpp_md("smol", "hf://acme/smol-GGUF", vram=1, contextLength=8192, concurrency=4)
    await kube.create(MD_API, "modeldeployments", "default", md)

    async def estimated() -> dict[str, Any] | None:
        st = await status(kube, "smol")
        return st if st.get("vram") else None

    st = await eventually(estimated, deadline=30, what="smol's VRAM estimate")
    vram = st["vram"]
    # 8192 tokens x 4 slots of KV cache: 720 MiB, more than the weights (92 MiB).
    assert vram["kvCacheGiB"] > 0.6 and 0.05 < vram["weightsGiB"] < 0.15 and vram["totalGiB"] > 1
    assert (vram["context"], vram["slots"], vram["cacheType"]) == (8192, 4, "f16")
    assert vram["source"] == f"hf://acme/smol-GGUF/{SMOL}"
    cond = condition(st)
    assert cond["reason"] == "SpecBelowEstimate" and "the spec says 1 GiB" in cond["message"], cond

    async def warned() -> list[dict[str, Any]]:
        return [e for e in await events_for(kube, "smol") if e["reason"] == "SpecBelowEstimate"]

    warnings = await eventually(warned, deadline=10, what="smol's Warning")
    assert warnings[0]["type"] == "Warning", warnings
    assert homelab.homelab.hub.served.get(f"acme/smol-GGUF/{SMOL}", 0) < 4 * MiB  # a header, not the file

    await wake(kube, "smol")

    async def placed() -> dict[str, Any] | None:
        s = await status(kube, "smol")
        return s if s.get("node") else None

    st = await eventually(placed, deadline=60, what="smol to be placed")
    assert st["node"] == "gpu-3090", st  # by the spec's 1 GiB it would have taken the 3070's last GiB


async def test_a_model_without_vram_in_its_spec_is_placed_by_its_headers(
    kube: Kube, homelab: HomelabThread, operator: OperatorProcess, smollm2: Path
) -> None:
    homelab.homelab.hub.repos["acme/smol2-GGUF"] = Repo({SMOL: Hosted.on_disk(smollm2)})
    # A repository of two quantisations, `files` picking one: llama.cpp is pointed at that file.
    other = Hosted.synthetic(1 << 20, seed=5)
    homelab.homelab.hub.repos["acme/smol2-GGUF"].files["SmolLM2-135M-Instruct.Q8_0.gguf"] = other
    md = llamacpp_md("smol2", "hf://acme/smol2-GGUF")
    md["spec"]["modelSource"]["files"] = "*Q4_1.gguf"
    await kube.create(MD_API, "modeldeployments", "default", md)
    await wake(kube, "smol2")
    try:
        st = await wait_phase(kube, "smol2", "Warm", deadline=90)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {await status(kube, 'smol2')}") from None
    assert st["node"] and st["vram"]["totalGiB"] > 0.5
    assert condition(st)["reason"] == "FromHeaders"
    assert st["vram"]["weightsFile"] == SMOL


async def test_a_model_no_card_can_hold_is_refused_before_a_byte_of_its_weights_moves(
    kube: Kube, homelab: HomelabThread, operator: OperatorProcess
) -> None:
    path = synthetic_gguf.cached("qwen2.5-14b", "Q8_0")
    with path.open("rb") as f:
        header = gguf_header.parse(f.read(16 * MiB))
    # A 15 GiB sparse file: its digest is never worked out (nothing downloads it).
    hosted = Hosted(size=path.stat().st_size, path=path, _sha256="0" * 64)
    name = "qwen2.5-14b-instruct-q8_0.gguf"
    homelab.homelab.hub.repos["acme/big-GGUF"] = Repo({name: hosted})
    await kube.create(
        MD_API, "modeldeployments", "default", llamacpp_md("big", "hf://acme/big-GGUF", contextLength=65536)
    )
    await wake(kube, "big")
    st = await wait_phase(kube, "big", "Unschedulable", deadline=30)
    scheduled = condition(st, "Scheduled")
    assert scheduled["reason"] == "NoSuitableNode", scheduled
    # Its weights are 14.6 GiB: the 3090 holds it with less context, the 3070 not at all.
    assert "fits the 3090 with contextLength ≤ " in st["message"], st["message"]
    assert "3070" not in st["message"].split("fits the")[1], st["message"]
    served = homelab.homelab.hub.served.get(f"acme/big-GGUF/{name}", 0)
    assert 0 < served <= header.data_offset + 2 * MiB, served  # the header and no weights
    jobs = (await kube.list("batch/v1", "jobs", "default"))["items"]
    assert not [j for j in jobs if j["metadata"]["name"].startswith("big-")], jobs


@pytest.fixture
def truncated(smollm2: Path, tmp_path: Path) -> Path:
    """SmolLM2's first 4 MiB: its whole header, but not the tensors the header describes."""
    path = tmp_path / "cut.gguf"
    path.write_bytes(smollm2.read_bytes()[: 4 * MiB])
    return path


async def test_a_header_that_is_not_gguf_or_is_truncated_is_named(
    kube: Kube, homelab: HomelabThread, operator: OperatorProcess, truncated: Path
) -> None:
    homelab.homelab.hub.repos["acme/odd-GGUF"] = Repo(
        {"html.gguf": Hosted.synthetic(1 * MiB, seed=3), "cut.gguf": Hosted.on_disk(truncated)}
    )
    for name, file, says in (
        ("odd-html", "html.gguf", "not a GGUF file"),
        ("odd-cut", "cut.gguf", "the file has"),
    ):
        await kube.create(
            MD_API, "modeldeployments", "default", llamacpp_md(name, f"hf://acme/odd-GGUF/{file}", vram=2)
        )

        async def named(n: str = name) -> dict[str, Any] | None:
            st = await status(kube, n)
            return st if condition(st).get("reason") == "UnreadableWeights" else None

        st = await eventually(named, deadline=30, what=f"{name}'s unreadable header")
        message = condition(st)["message"]
        assert f"hf://acme/odd-GGUF/{file}" in message and says in message, message
        assert "placing by gpu.vramGiB=2" in message, message
        assert st.get("vram") is None

        # The Event follows the status write.
        async def warned(n: str = name) -> bool:
            return any(e["reason"] == "UnreadableWeights" for e in await events_for(kube, n))

        await eventually(warned, deadline=10, what=f"{name}'s Warning")


def _safetensors(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A safetensors file: its header, then zeros for the data."""
    table, at = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = 2
        for d in shape:
            n *= d
        table[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + n]}
        at += n
    raw = json.dumps(table).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(at)


@pytest.fixture
def checkpoint(tmp_path: Path) -> dict[str, Hosted]:
    """A Transformers checkpoint of a small Qwen2-like model: config.json and two shards."""
    config = {
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 512, "intermediate_size": 1024,
        "num_hidden_layers": 8, "num_attention_heads": 8, "num_key_value_heads": 2,
        "vocab_size": 32000, "max_position_embeddings": 32768, "torch_dtype": "bfloat16",
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "a.safetensors").write_bytes(
        _safetensors({"model.embed_tokens.weight": ("BF16", [32000, 512])})
    )
    (tmp_path / "b.safetensors").write_bytes(_safetensors({"lm_head.weight": ("BF16", [32000, 512])}))
    return {
        "config.json": Hosted(
            size=(tmp_path / "config.json").stat().st_size, path=tmp_path / "config.json", git=True
        ),
        "model-00001-of-00002.safetensors": Hosted.on_disk(tmp_path / "a.safetensors"),
        "model-00002-of-00002.safetensors": Hosted.on_disk(tmp_path / "b.safetensors"),
    }


async def test_a_vllm_checkpoint_is_estimated_from_its_safetensors_headers_and_config(
    kube: Kube, homelab: HomelabThread, operator: OperatorProcess, checkpoint: dict[str, Hosted]
) -> None:
    homelab.homelab.hub.repos["acme/tiny-qwen"] = Repo(checkpoint)
    md = llamacpp_md("tiny-qwen", "hf://acme/tiny-qwen", contextLength=16384)
    md["spec"]["engine"] = "vllm"
    await kube.create(MD_API, "modeldeployments", "default", md)

    st = await estimated(kube, "tiny-qwen")
    assert condition(st)["reason"] == "FromHeaders", condition(st)
    vram = st["vram"]
    # Both shards' tensors: 2 x 32000 x 512 x 2 bytes.
    assert vram["weightsGiB"] == pytest.approx(2 * 32000 * 512 * 2 / 2**30, abs=1e-3)
    # One whole sequence of --max-model-len: 16384 x 8 layers x 2 KV heads x 64 x 2 (K, V) x 2 bytes.
    assert vram["kvCacheGiB"] == pytest.approx(16384 * 8 * 2 * 64 * 2 * 2 / 2**30, abs=1e-3)
    assert vram["context"] == 16384 and "2 safetensors files" in vram["source"]


async def test_an_ollama_model_is_estimated_from_the_gguf_its_manifest_names(
    kube: Kube, homelab: HomelabThread, operator: OperatorProcess, smollm2: Path
) -> None:
    model = OllamaModel(
        layers=[Hosted.on_disk(smollm2), Hosted.synthetic(120, seed=1)], config=Hosted.synthetic(480)
    )
    homelab.homelab.hub.ollama["library/smollm2:135m"] = model
    md = llamacpp_md("smol-ollama", "ollama://smollm2:135m", contextLength=8192, concurrency=2)
    md["spec"]["engine"] = "ollama"
    await kube.create(MD_API, "modeldeployments", "default", md)

    st = await estimated(kube, "smol-ollama")
    assert condition(st)["reason"] == "FromHeaders", condition(st)
    # Ollama's OLLAMA_NUM_PARALLEL slots of OLLAMA_CONTEXT_LENGTH each, as Hearth sets them.
    assert (st["vram"]["context"], st["vram"]["slots"]) == (8192, 2)
    assert st["vram"]["kvCacheGiB"] == pytest.approx(30 * 384 * 2 * 8192 * 2 / 2**30, abs=1e-3)
    assert st["vram"]["source"].startswith("ollama://smollm2:135m (layer ")
    served = homelab.homelab.hub.served.get(model.digest(model.weights), 0)
    assert 0 < served < 4 * MiB  # the header of the GGUF layer, not the layer


async def test_a_gated_model_is_estimated_from_its_downloaded_files(
    kube: Kube, homelab: HomelabThread, operator: OperatorProcess, smollm2: Path
) -> None:
    # A private repository: the operator reads no headers without a token; the fetch Job has one.
    homelab.homelab.hub.repos["acme/gated-GGUF"] = Repo({SMOL: Hosted.on_disk(smollm2)}, token="hf_gated")
    secret = {"metadata": {"name": "hearth-hf-token"}, "stringData": {"token": "hf_gated"}}
    await kube.create("v1", "secrets", "default", secret)
    try:
        md = llamacpp_md("gated", "hf://acme/gated-GGUF", vram=2, contextLength=4096, concurrency=1)
        md["spec"]["modelSource"]["files"] = "*.gguf"
        await kube.create(MD_API, "modeldeployments", "default", md)

        async def unread() -> dict[str, Any] | None:
            st = await status(kube, "gated")
            return st if condition(st).get("reason") == "UnreadableWeights" else None

        st = await eventually(unread, deadline=30, what="gated's headers refused")
        assert "no public repository acme/gated-GGUF" in condition(st)["message"]
        await wake(kube, "gated")
        st = await wait_phase(kube, "gated", "Warm", deadline=90)
    finally:
        await kube.delete("v1", "secrets", "default", "hearth-hf-token")
    assert condition(st)["reason"] == "FromHeaders", condition(st)
    assert st["vram"]["source"] == "the downloaded files of hf://acme/gated-GGUF"
    assert st["vram"]["weightsFile"] == SMOL and st["vram"]["context"] == 4096
    # And llama.cpp was given that file, not the repository's folder (it is Warm).
    engine = (await kube.get("apps/v1", "deployments", "default", "gated"))["spec"]["template"]["spec"]
    assert engine["containers"][0]["args"][1] == f"/models/hf/acme/gated-GGUF/{SMOL}"

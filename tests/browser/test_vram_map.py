"""The GPU map shows what a model's weights say it takes: a llama.cpp model read from an hf://
GGUF's header is drawn with its parts (weights, KV cache, compute, CUDA overhead) and the
numbers beside its card."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from hearth_sim.homelab import HomelabThread
from hearth_sim.hub import Hosted, Repo
from hearth_sim.kube import Kube

from ..cluster.conftest import smollm2_or_skip
from ..cluster.operator_helpers import MD_API, OperatorProcess, downloading_operator, wait_phase, wake
from ..cluster.router_helpers import RouterProcess
from ..cluster.test_vram import SMOL, llamacpp_md
from .conftest import shot
from .test_dashboard import WAIT, open_dashboard


@pytest.fixture(scope="module")
def smollm2() -> Path:
    return smollm2_or_skip()


@pytest.fixture(scope="module")
def operator(homelab: HomelabThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    op = downloading_operator(homelab, tmp_path_factory.mktemp("operator"))
    yield op
    op.stop()


async def test_the_gpu_map_draws_a_models_estimated_footprint_by_part(
    kube: Kube, homelab: HomelabThread, router: RouterProcess, page: Page, smollm2: Path
) -> None:
    homelab.homelab.hub.repos["acme/map-GGUF"] = Repo({SMOL: Hosted.on_disk(smollm2)})
    md = llamacpp_md("mapped", f"hf://acme/map-GGUF/{SMOL}", contextLength=8192, concurrency=2)
    await kube.create(MD_API, "modeldeployments", "default", md)
    await wake(kube, "mapped")
    st = await wait_phase(kube, "mapped", "Warm", deadline=90)
    await open_dashboard(page, router.url)
    gpu = page.locator(f'#gpus .gpu[data-node="{st["node"]}"]')
    piece = gpu.locator('.slice.estimated[data-model="mapped"]')
    await expect(piece).to_have_attribute("data-phase", "Warm", timeout=WAIT)
    for part in ("weights", "kvCache", "compute", "overhead"):
        await expect(piece.locator(f'.part[data-part="{part}"]')).to_have_count(1)
    # 8192 tokens x 2 slots of SmolLM2's cache: 360 MiB, four times its weights.
    kv = await piece.locator('.part[data-part="kvCache"]').bounding_box()
    weights = await piece.locator('.part[data-part="weights"]').bounding_box()
    assert kv and weights and kv["width"] > 2 * weights["width"], (kv, weights)
    text = gpu.locator('.footprint[data-model="mapped"]')
    await expect(text).to_contain_text("estimated from its weights")
    await expect(text).to_contain_text(f"KV cache {st['vram']['kvCacheGiB']:.2f} GiB")
    await expect(text).to_contain_text(f"weights {st['vram']['weightsGiB']:.2f} GiB")
    # The model's card says what it takes, though its spec names no VRAM.
    await expect(page.locator('#models .model[data-model="mapped"]')).to_contain_text(
        f"any · {st['vram']['totalGiB']:.1f} GiB (estimated from its weights)"
    )
    await shot(page, "gpu-map-estimated-footprint")

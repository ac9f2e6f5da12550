"""Weights Hearth downloads itself: a `uri` source is fetched into the cache by a Job before the
model takes a GPU — its own phase (Downloading) with byte progress and an ETA, its own failures
— and the engine then loads the files from the cache. The homelab's hub stands in for the
internet: a file host and a Hugging Face-like API on loopback, throttled, counting the bytes it
sends."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hearth_sim.homelab import CACHE_CLAIM, HomelabThread
from hearth_sim.hub import Hosted
from hearth_sim.kube import Kube

from .conftest import eventually
from .operator_helpers import MD_API, OperatorProcess, sim_md, status, wait_phase, wake
from .router_helpers import CHAT, RouterProcess, chat, sse

MiB = 1 << 20
RATE = 40 * MiB  # bytes per second the hub sends each download


@pytest.fixture(scope="module")
def hub_url(homelab: HomelabThread) -> str:
    homelab.homelab.hub.rate = RATE
    return homelab.homelab.hub_url


@pytest.fixture(scope="module")
def operator(
    homelab: HomelabThread, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator with the chart's weights cache, downloading from the homelab's hub."""
    op = OperatorProcess(
        homelab, tmp_path_factory.mktemp("operator"), cache_claim=CACHE_CLAIM, hf_endpoint=hub_url
    )
    op.start()
    yield op
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-4000:]


def cache_dir(homelab: HomelabThread) -> Path:
    return homelab.homelab.volumes_dir / CACHE_CLAIM


def host(homelab: HomelabThread, name: str, size: int, seed: int = 0) -> tuple[str, Hosted]:
    hosted = Hosted.synthetic(size, seed=seed)
    homelab.homelab.hub.files[name] = hosted
    return f"{homelab.homelab.hub_url}/files/{name}", hosted


def downloaded_md(name: str, uri: str, idle: int = 300, **source: Any) -> dict[str, Any]:
    return sim_md(name, load=2.0, idle=idle, modelSource={"uri": uri, **source})


async def test_a_cold_model_downloads_then_loads_from_the_cache(
    kube: Kube, homelab: HomelabThread, router: RouterProcess
) -> None:
    uri, hosted = host(homelab, "first/model.gguf", 200 * MiB, seed=1)
    await kube.create(
        MD_API, "modeldeployments", "default", downloaded_md("first", uri, sha256=hosted.sha256())
    )
    await wait_phase(kube, "first", "Cold")
    await wake(kube, "first")
    seen: list[dict[str, Any]] = []

    async def loading() -> dict[str, Any] | None:
        st = await status(kube, "first")
        if st.get("phase") == "Downloading" and st.get("download", {}).get("bytes"):
            if not seen or seen[-1] != st["download"]:
                seen.append(st["download"])
        return st if st.get("phase") in ("Loading", "Warm") else None

    await eventually(loading, deadline=60, what="the download to finish", interval=0.1)
    assert len(seen) >= 2, seen
    assert [s["bytes"] for s in seen] == sorted(s["bytes"] for s in seen), seen  # rising
    assert all(s["totalBytes"] == hosted.size for s in seen), seen
    etas = [s["etaSeconds"] for s in seen if s.get("etaSeconds") is not None]
    assert etas and etas[-1] < etas[0], seen  # falling
    warm = await wait_phase(kube, "first", "Warm", deadline=30)
    assert warm["cache"]["uri"] == uri and warm["cache"]["bytes"] == hosted.size
    # The engine loaded the file the fetch left (the sim engine fails its load without it).
    assert (
        cache_dir(homelab) / "https" / "127.0.0.1" / "files" / "first" / "model.gguf"
    ).stat().st_size == hosted.size
    # The warm-up measured the load alone: ~2 s of sim load (0.1 s at the time scale), not the download.
    assert warm["warmup"]["samples"][-1] < seen[-1]["bytes"] / RATE, warm["warmup"]


async def test_a_streamed_chat_shows_the_download_then_the_load_and_the_second_wake_skips_it(
    kube: Kube, homelab: HomelabThread, router: RouterProcess
) -> None:
    uri, hosted = host(homelab, "chat/model.gguf", 120 * MiB, seed=2)
    await kube.create(MD_API, "modeldeployments", "default", downloaded_md("chatty", uri, idle=2))
    await wait_phase(kube, "chatty", "Cold")
    async with httpx.AsyncClient(timeout=90) as http:
        stream = await sse(http, f"{router.url}{CHAT}", chat("chatty"))
    statuses = stream.statuses
    assert statuses[0] == "routing" and statuses[-2:] == ["generating", "done"], statuses
    first_loading = statuses.index("loading")
    assert "downloading" in statuses[:first_loading], statuses  # downloading, then loading
    assert "downloading" not in statuses[first_loading:], statuses
    shown = [e.data for e in stream.of("downloading") if e.data.get("bytes")]
    assert shown, stream.of("downloading")
    assert all(d["total_bytes"] == hosted.size and 0 < d["progress"] <= 1 for d in shown), shown
    assert "for the first time" in shown[-1]["message"], shown[-1]
    assert [d["progress"] for d in shown] == sorted(d["progress"] for d in shown), shown
    assert stream.text

    # Idle (2 s) → Cold; the next request loads from the cache: no download, and the loading
    # countdown starts from the learned load time.
    cold = await wait_phase(kube, "chatty", "Cold", deadline=30)
    estimate = cold["warmup"]["estimateSeconds"]
    assert cold["warmup"]["samples"] and cold["cache"]["uri"] == uri
    async with httpx.AsyncClient(timeout=90) as http:
        again = await sse(http, f"{router.url}{CHAT}", chat("chatty"))
    assert "downloading" not in again.statuses and again.statuses[-1] == "done", again.statuses
    first = again.of("loading")[0].data
    assert first["estimated_time"] == max(1, math.ceil(estimate)), (first, estimate)
    assert homelab.homelab.hub.served["chat/model.gguf"] == hosted.size  # fetched once

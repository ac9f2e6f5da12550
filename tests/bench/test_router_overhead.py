"""What the router costs: the same streams straight to an engine and through the router, in the
same run. Prints the figures and their ratios; asserts only that every stream completed."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube

from ..cluster.conftest import EngineProc, eventually
from ..cluster.router_helpers import CHAT, RouterProcess, chat

N = 40  # streams per measurement
CONCURRENT = 20


@pytest.fixture(scope="module")
def router(homelab: HomelabThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    r = RouterProcess(homelab, tmp_path_factory.mktemp("router")).start()
    yield r
    r.stop()


async def one_stream(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[float, float, int]:
    """(time to first token, total time, tokens) of one streamed answer."""
    began = time.perf_counter()
    first = 0.0
    tokens = 0
    async with http.stream("POST", url, json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"delta":{"content":"' in line and '"content":""' not in line:
                tokens += 1
                first = first or time.perf_counter() - began
    return first, time.perf_counter() - began, tokens


async def measure(url: str, body: dict[str, Any], concurrent: int) -> dict[str, float]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=100)) as http:
        await one_stream(http, url, body)  # warm the connection pools
        began = time.perf_counter()
        results: list[tuple[float, float, int]] = []
        for _ in range(N // concurrent):
            results += await asyncio.gather(*(one_stream(http, url, body) for _ in range(concurrent)))
        wall = time.perf_counter() - began
    assert all(tokens == 32 for _, _, tokens in results)
    return {
        "ttft_ms": 1000 * statistics.median(r[0] for r in results),
        "stream_ms": 1000 * statistics.median(r[1] for r in results),
        "tokens_per_s": sum(r[2] for r in results) / wall,
    }


async def test_router_overhead(
    homelab: HomelabThread, router: RouterProcess, start_engine: Callable[..., EngineProc]
) -> None:
    engine = start_engine("--load-seconds", "0", "--tokens-per-second", "2000")
    engine.wait_healthy()
    kube = Kube(homelab.homelab.url)
    md = {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "bench"},
        "spec": {"model": "bench", "engine": "sim", "gpu": {"vramGiB": 4}, "concurrency": 64},
    }
    await kube.create("hearth.dev/v1alpha1", "modeldeployments", "default", md)
    await kube.patch(
        "hearth.dev/v1alpha1",
        "modeldeployments",
        "default",
        "bench",
        {"status": {"phase": "Warm", "endpoints": [engine.url], "gpuClass": "rtx3090"}},
        sub="status",
    )
    await kube.close()

    async def known() -> bool:
        async with httpx.AsyncClient() as http:
            return any(
                m["id"] == "bench" and m["phase"] == "Warm"
                for m in (await http.get(f"{router.url}/v1/models")).json()["data"]
            )

    await eventually(known, what="the router to see the bench model")

    body = chat("bench")
    rows = []
    for concurrent in (1, CONCURRENT):
        direct = await measure(f"{engine.url}{CHAT}", {**body, "model": "sim"}, concurrent)
        routed = await measure(f"{router.url}{CHAT}", body, concurrent)
        rows.append((concurrent, direct, routed))
    print(f"\nrouter overhead, {N} streams of 32 tokens from a sim engine at 2000 tokens/s (medians)")
    print(f"{'concurrent':>10} {'metric':>13} {'direct':>9} {'router':>9} {'ratio':>6}")
    for concurrent, direct, routed in rows:
        for metric in ("ttft_ms", "stream_ms", "tokens_per_s"):
            ratio = routed[metric] / direct[metric]
            print(
                f"{concurrent:>10} {metric:>13} {direct[metric]:>9.1f} {routed[metric]:>9.1f} {ratio:>6.2f}"
            )

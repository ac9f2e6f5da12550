"""Drain, not drop: a router told to stop (SIGTERM, as a `helm upgrade` or a node drain does)
stops listening at once, lets the streams it holds finish, and ends those still running at its
drain deadline with an error event saying it is restarting, then [DONE]."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube

from .conftest import eventually
from .operator_helpers import status
from .router_helpers import CHAT, RouterProcess, chat, cold_model, sse

DRAIN = 3.0  # seconds: the reply below takes ~10 s at 4 tokens/s, two tokens take 0.5 s


@pytest.fixture
def stopping_router(homelab: HomelabThread, tmp_path: Path) -> Iterator[RouterProcess]:
    r = RouterProcess(homelab, tmp_path, drain_seconds=DRAIN).start()
    yield r
    r.stop()


async def test_sigterm_lets_streams_finish_and_ends_the_rest_with_a_reason(
    kube: Kube, stopping_router: RouterProcess
) -> None:
    router = stopping_router
    await cold_model(kube, router, "drainy", load=0.2, time_scale=1.0, tokens_per_second=4)
    async with httpx.AsyncClient(timeout=60) as http:
        warm = await sse(http, f"{router.url}{CHAT}", chat("drainy", max_tokens=1))
        assert warm.statuses[-1] == "done", warm.events[-3:]
        engine = (await status(kube, "drainy"))["endpoints"][0]
        long = asyncio.create_task(sse(http, f"{router.url}{CHAT}", chat("drainy")))
        short = asyncio.create_task(sse(http, f"{router.url}{CHAT}", chat("drainy", max_tokens=6)))

        async def both_generating() -> bool:
            return bool((await http.get(f"{engine}/stats")).json()["active_streams"] == 2)

        await eventually(both_generating, deadline=10, interval=0.02, what="both streams at the engine")
        assert router.proc is not None
        router.proc.send_signal(signal.SIGTERM)

        async def refused() -> bool:
            try:
                async with httpx.AsyncClient(timeout=1) as fresh:
                    await fresh.get(f"{router.url}/readyz")
            except httpx.TransportError:
                return True
            return False

        await eventually(refused, deadline=5, interval=0.05, what="the stopping router to stop listening")
        finished, cut = await short, await long
    # The short answer was let finish; the long one ended at the deadline, with the reason.
    assert finished.statuses[-2:] == ["generating", "done"] and finished.events[-1].data == "[DONE]"
    error = cut.events[-2].data
    assert isinstance(error, dict) and error["status"] == "error", cut.events[-3:]
    assert error["error"]["code"] == "router_restarting" and "restarting" in error["error"]["message"]
    assert cut.events[-1].data == "[DONE]" and cut.text  # it had been answering
    # Then it exits, as uvicorn does after a graceful stop: by the signal it was sent.
    assert router.proc.wait(timeout=15) in (0, -signal.SIGTERM), router.logs()[-2000:]
    assert "Traceback" not in router.logs(), router.logs()[-4000:]

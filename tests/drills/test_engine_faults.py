"""Drills 1 and 2: engines that die. SIGKILL of a model's engine process while a request loads,
waits in the queue, or streams; engines that never become healthy or crash while loading. No
client is left waiting in silence: each gets its answer after the restart, or an error event
naming the model and the reason, then [DONE]; fixing the spec brings the model back."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube

from ..cluster.conftest import eventually, homelab, kube, router  # noqa: F401  (fixtures, shared)
from ..cluster.operator_helpers import MD_API, OperatorProcess, sim_md, wait_phase
from ..cluster.router_helpers import CHAT, RouterProcess, Stream, chat, sse
from .record import Drill

LOAD_TIMEOUT = 2.0  # the operator's minimum load deadline in this module
killed = Drill(
    "01-engine-killed",
    "Engine killed mid-request",
    "SIGKILL of the model's engine process while a request loads, waits in the queue, or streams",
    checked="streaming: error event naming the model + [DONE] ≤ 2 s, the SDK raises APIError; "
    "loading/queued: answered after the restart; the next request works",
)
failing = Drill(
    "02-engine-never-healthy",
    "Engine never healthy, or crashing while loading",
    "an engine whose health never turns 200; an engine that exits while loading; then the spec fixed",
    checked="Failed with the reason (load deadline / crash count); every waiting client told it; "
    "fixed spec serves again",
)


@pytest.fixture(scope="module")
def operator(homelab: HomelabThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:  # noqa: F811
    """This module's operator fails a load after LOAD_TIMEOUT s (or 5 estimates) instead of 600."""
    op = OperatorProcess(homelab, tmp_path_factory.mktemp("operator"), load_timeout_seconds=LOAD_TIMEOUT)
    op.start()
    yield op
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-4000:]


def model(name: str, *, failure: str | None = None, expected: float = 0.2, **kw: Any) -> dict[str, Any]:
    md = sim_md(name, **kw)
    # 0.2 s: the deadline is the minimum, LOAD_TIMEOUT; a model whose restarts must succeed
    # says more (its deadline is 5 estimates): a process restart on a busy machine takes seconds.
    md["spec"]["warmup"] = {"expectedSeconds": expected}
    if failure:
        md["spec"]["env"].append({"name": "HEARTH_SIM_FAILURE", "value": failure})
    return md


async def engine_pid(kube: Kube, homelab: HomelabThread, name: str) -> int:  # noqa: F811
    async def running() -> int | None:
        pods = (await kube.list("v1", "pods", "default"))["items"]
        for pod in pods:
            if pod["metadata"]["labels"].get("hearth.dev/model") == name and homelab.homelab.kubelet:
                return homelab.homelab.kubelet.pids.get(pod["metadata"]["uid"])
        return None

    return await eventually(running, what=f"{name}'s engine process")


def ended_cleanly(stream: Stream) -> bool:
    if not stream.events or stream.events[-1].data != "[DONE]":
        return False
    return stream.statuses[-1:] == ["done"] or (
        isinstance(stream.events[-2].data, dict) and "error" in stream.events[-2].data
    )


async def test_an_engine_killed_while_streaming_queued_or_loading(
    kube: Kube,  # noqa: F811
    router: RouterProcess,  # noqa: F811
    homelab: HomelabThread,  # noqa: F811
) -> None:
    # One slot, answers of 3.2 s: a second request queues behind the first.
    spec = model("victim", load=0.5, time_scale=1.0, tokens_per_second=10, concurrency=1, expected=3.0)
    await kube.create(MD_API, "modeldeployments", "default", spec)
    after_kill: list[float] = []  # seconds from the kill to the streaming client's [DONE]
    async with httpx.AsyncClient(timeout=60) as http:
        for _ in range(2):  # twice each: a kill is not a crash loop (three would be)
            first = asyncio.create_task(sse(http, f"{router.url}{CHAT}", chat("victim")))
            await eventually(lambda: _streaming(router, "victim"), deadline=30, what="a reply to stream")
            second = asyncio.create_task(sse(http, f"{router.url}{CHAT}", chat("victim")))
            await eventually(lambda: _queued(router, "victim"), what="the second request to queue")
            os.kill(await engine_pid(kube, homelab, "victim"), signal.SIGKILL)
            killed_at = time.monotonic()
            streaming, queued = await first, await asyncio.wait_for(second, 60)
            killed.times += 2
            error = streaming.events[-2].data
            assert isinstance(error, dict) and "error" in error, streaming.events[-3:]
            assert "victim" in error["error"]["message"]
            after_kill.append(streaming.events[-1].at - killed_at)
            assert queued.statuses[-1] == "done", queued.events[-2:]  # served after the restart
            for stream in (streaming, queued):
                killed.streams_lost += not ended_cleanly(stream)

    # Killed while loading: the request waits through the restart and is answered.
    slow = model("slow-load", load=3, time_scale=1.0)
    slow["spec"]["warmup"] = {"expectedSeconds": 3}  # its load deadline: 5 x 3 s, time for a restart
    await kube.create(MD_API, "modeldeployments", "default", slow)
    await wait_phase(kube, "slow-load", "Cold")
    async with httpx.AsyncClient(timeout=60) as http:
        waiting = asyncio.create_task(sse(http, f"{router.url}{CHAT}", chat("slow-load")))
        await wait_phase(kube, "slow-load", "Loading")
        os.kill(await engine_pid(kube, homelab, "slow-load"), signal.SIGKILL)
        loaded = await asyncio.wait_for(waiting, 60)
    killed.times += 1
    killed.streams_lost += not ended_cleanly(loaded)
    assert loaded.statuses[-1] == "done" and "loading" in loaded.statuses, loaded.statuses

    # The official SDK sees the mid-stream failure as an APIError.
    client = openai.AsyncOpenAI(base_url=f"{router.url}/v1", api_key="unused", max_retries=0)
    stream = await client.chat.completions.create(
        model="victim", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    await eventually(lambda: _streaming(router, "victim"), deadline=30, what="the SDK's reply to stream")
    os.kill(await engine_pid(kube, homelab, "victim"), signal.SIGKILL)
    killed.times += 1
    with pytest.raises(openai.APIError, match="victim"):
        async for _ in stream:
            pass
    await client.close()
    killed.checked = (
        f"streaming: error event naming the model + [DONE] {max(after_kill):.2f} s after the kill at most, "
        "the SDK raises APIError; loading/queued: answered after the restart; the next request works"
    )
    killed.save()


async def _streaming(at: RouterProcess, name: str) -> bool:
    return (await _view(at, name))["in_flight"] >= 1


async def _queued(at: RouterProcess, name: str) -> bool:
    return (await _view(at, name))["queued"] >= 1


async def _view(at: RouterProcess, name: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        models = (await http.get(f"{at.url}/api/models")).json()["models"]
    return dict(next(m["router"] for m in models if m["name"] == name))


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("never-ready", f"not Ready within {LOAD_TIMEOUT:.0f} s"),
        ("fail-load", "(last exit code 3)"),
    ],
)
async def test_an_engine_that_never_comes_up_fails_every_waiter_with_the_reason(
    kube: Kube,  # noqa: F811
    router: RouterProcess,  # noqa: F811
    failure: str,
    reason: str,
) -> None:
    name = f"broken-{failure}"
    await kube.create(MD_API, "modeldeployments", "default", model(name, failure=failure, load=2))
    await wait_phase(kube, name, "Cold")
    async with httpx.AsyncClient(timeout=60) as http:
        streams = [sse(http, f"{router.url}{CHAT}", chat(name)) for _ in range(4)]
        whole = http.post(f"{router.url}{CHAT}", json=chat(name, stream=False))
        *told, answer = await asyncio.gather(*streams, whole)
    failing.times += 5
    for stream in told:
        failing.streams_lost += not ended_cleanly(stream)
        error = stream.events[-2].data
        assert isinstance(error, dict) and error["error"]["code"] == "model_failed", stream.events[-2:]
        assert f"{name} failed to load" in error["error"]["message"] and reason in error["error"]["message"]
    assert answer.status_code == 503 and reason in answer.json()["error"]["message"]
    status = await wait_phase(kube, name, "Failed")
    assert reason in status["message"]

    # The spec fixed (the fault removed): a new generation, and the next request is served.
    md = await kube.get(MD_API, "modeldeployments", "default", name)
    env = [e for e in md["spec"]["env"] if e["name"] != "HEARTH_SIM_FAILURE"]
    await kube.patch(MD_API, "modeldeployments", "default", name, {"spec": {"env": env}})
    async with httpx.AsyncClient(timeout=60) as http:
        last: list[Any] = []

        async def served() -> Stream | None:
            stream = await sse(http, f"{router.url}{CHAT}", chat(name))
            last[:] = [
                stream.body or stream.statuses,
                await kube.get(MD_API, "modeldeployments", "default", name),
            ]
            return stream if stream.statuses[-1:] == ["done"] else None

        try:
            await eventually(served, deadline=30, interval=0.2, what="the fixed model to answer")
        except AssertionError:
            raise AssertionError(
                f"the fixed model did not answer: {last[0]}; {last[1].get('status')}"
            ) from None
    failing.times += 1
    failing.save()

"""Drill 5: clients that hang up — while routed, while the model loads, while queued, while the
answer streams — 500 times. Each time the engine request (if any) is closed within a second,
and afterwards nothing is left behind: waiters and slots back to 0, and the router's asyncio
tasks, open file descriptors and engine streams as they were before."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx

from hearth_sim.kube import Kube

from ..cluster.conftest import eventually
from ..cluster.operator_helpers import MD_API, sim_md, wait_phase
from ..cluster.router_helpers import CHAT, RouterProcess, chat, sse
from .record import Drill

CYCLES = 500
PARALLEL = 10
tally = Drill(
    "05-client-disconnects",
    "Client disconnects",
    "the client hangs up during routing, loading, queued and generating (a quarter each)",
    checked="engine request closed ≤ 1 s; waiters/slots back to 0; tasks, fds, engine streams as before",
)


async def scrape(router: RouterProcess) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{router.url}/metrics")).text
    wanted = ("process_open_fds", "hearth_router_asyncio_tasks")
    found = {name: float(v) for name, v in re.findall(r"^(\w+) ([0-9.e+]+)$", text, re.M) if name in wanted}
    assert set(found) == set(wanted), text[:500]
    return found


async def model_view(router: RouterProcess, name: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        models = (await http.get(f"{router.url}/api/models")).json()["models"]
    (view,) = [m for m in models if m["name"] == name]
    return dict(view["router"])  # waiters, queued, in_flight


async def engine_streams(endpoint: str) -> int:
    async with httpx.AsyncClient() as http:
        return int((await http.get(f"{endpoint}/stats")).json()["active_streams"])


async def endpoint_of(kube: Kube, name: str) -> str:
    st = await wait_phase(kube, name, "Warm", deadline=30)
    return str(st["endpoints"][0])


async def hang_up(router: RouterProcess, model: str, after: int, expect: str, **extra: Any) -> None:
    """One request, abandoned once its `after`-th event has come — which must be `expect`."""
    async with httpx.AsyncClient(timeout=20) as http:
        try:
            stream = await sse(http, f"{router.url}{CHAT}", chat(model, **extra), stop_after=after)
        except httpx.TimeoutException:
            tally.hung += 1
            raise
    tally.times += 1
    last = stream.events[-1].data if stream.events else None
    seen = last.get("status", "token") if isinstance(last, dict) else last
    if stream.status >= 500:
        tally.server_errors += 1
    assert seen == expect, (model, stream.statuses)


async def test_hanging_up_at_every_stage_leaves_nothing_behind(kube: Kube, router: RouterProcess) -> None:
    # never-ready: stays Loading; slot: one slot, held by a long answer; warm: room for all.
    stuck = sim_md("stuck", load=1)
    stuck["spec"]["env"].append({"name": "HEARTH_SIM_FAILURE", "value": "never-ready"})
    await kube.create(MD_API, "modeldeployments", "default", stuck)
    await kube.create(
        MD_API,
        "modeldeployments",
        "default",
        sim_md("slot", load=0.2, time_scale=1.0, tokens_per_second=0.5, concurrency=1),
    )
    await kube.create(
        MD_API,
        "modeldeployments",
        "default",
        sim_md("warm", load=0.2, time_scale=1.0, tokens_per_second=20, concurrency=16),
    )
    for name in ("slot", "warm"):
        await kube.patch(
            MD_API, "modeldeployments", "default", name, {"spec": {"scaling": {"minReplicas": 1}}}
        )
    slot_engine, warm_engine = await endpoint_of(kube, "slot"), await endpoint_of(kube, "warm")

    # One long answer holds the only slot of `slot` for the whole drill.
    holder = asyncio.create_task(hang_up(router, "slot", 10**6, "done"))
    await eventually(lambda: _in_flight(router, "slot"), what="the slot to be taken")

    stages = [
        ("stuck", 1, "routing"),
        ("stuck", 2, "loading"),
        ("slot", 2, "queued"),
        ("warm", 4, "token"),  # routing, generating, the role chunk, a token
    ]
    for model, after, expect in stages:  # once each first: what is made lazily, made
        await hang_up(router, model, after, expect)
    await _settled(router, warm_engine)
    before = await scrape(router)

    # The generating case, timed: how soon the engine's stream ends after the hang-up (the
    # figure goes to the table; the test only guards against a request left open).
    closes = []
    for _ in range(10):
        await hang_up(router, "warm", 4, "token")
        began = time.monotonic()
        await eventually(lambda: _engine_idle(warm_engine), deadline=10, what="the engine request to close")
        closes.append(time.monotonic() - began)
    tally.checked = (
        f"engine request closed after the hang-up in ≤ {max(closes):.2f} s (10 timed); "
        "waiters/slots back to 0; tasks, fds, engine streams as before"
    )

    queue: asyncio.Queue[tuple[str, int, str]] = asyncio.Queue()
    for i in range(CYCLES - len(stages) - 10 - 1):
        queue.put_nowait(stages[i % len(stages)])

    async def worker() -> None:
        while not queue.empty():
            await hang_up(router, *queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(PARALLEL)))
    await _settled(router, warm_engine)
    after = await scrape(router)
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)
    tally.times += 1  # the holder, hung up mid-answer too

    assert after["hearth_router_asyncio_tasks"] <= before["hearth_router_asyncio_tasks"] + 3, (before, after)
    assert after["process_open_fds"] <= before["process_open_fds"] + 5, (before, after)
    for name in ("stuck", "warm"):
        view = await model_view(router, name)
        assert (view["waiters"], view["in_flight"]) == (0, 0), view
    await eventually(lambda: _in_flight(router, "slot", 0), what="the holder's slot to be given back")
    await eventually(
        lambda: _engine_idle(slot_engine), deadline=2.0, what="the holder's engine request to close"
    )
    assert tally.times >= CYCLES
    tally.save()


async def _in_flight(router: RouterProcess, name: str, want: int = 1) -> bool:
    return (await model_view(router, name))["in_flight"] == want


async def _engine_idle(endpoint: str) -> bool:
    return await engine_streams(endpoint) == 0


async def _settled(router: RouterProcess, engine: str) -> None:
    """Every hang-up noticed: no waiter on the stuck model, no stream on the warm engine."""

    async def quiet() -> bool:
        stuck, warm = await model_view(router, "stuck"), await model_view(router, "warm")
        return stuck["waiters"] == 0 and warm["in_flight"] == 0 and await _engine_idle(engine)

    await eventually(quiet, deadline=10, what="the hang-ups to be noticed")

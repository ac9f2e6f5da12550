"""Router replicas: the same cold-start herd through one router (its line in memory) and through
two replicas sharing one line in a real Redis, in the same run. The client is the same both
times — two kernel-timed bursts of half the herd each, written at once — only where they land
differs. What the shared line costs per request, and whether a second process takes the burst
faster than one."""

from __future__ import annotations

import asyncio

from hearth_sim.kube import Kube
from hearth_sim.store import StoreServer

from ..cluster.router_helpers import RouterProcess
from .harness import Stack, Table, Timed, kernel_timed_burst, pct, proc_status
from .herd import _chat, _first_event, cold_model, wakes_sent


async def _herd(
    st: Stack, kube: Kube, name: str, routers: list[RouterProcess], n: int
) -> tuple[list[Timed], float, int]:
    """`n` streams in two bursts of n/2 written at once, the halves alternating over `routers`:
    the streams, the routers' CPU seconds for them, and the wakes sent."""
    await cold_model(kube, name, *(r.url for r in routers))
    api = st.lab.homelab.api
    assert api is not None
    before = len(api.requests)
    pids = [r.proc.pid for r in routers if r.proc is not None]
    cpu = sum(proc_status(pid)["cpu_s"] for pid in pids)
    halves = await asyncio.gather(
        *(
            kernel_timed_burst(routers[i % len(routers)].url, "/v1/chat/completions", _chat(name), n // 2)
            for i in range(2)
        )
    )
    used = sum(proc_status(pid)["cpu_s"] for pid in pids) - cpu
    return [s for half in halves for s in half], used, wakes_sent(api, name, before)


async def run(st: Stack, smoke: bool = False) -> list[Table]:
    n = 40 if smoke else 1000
    kube = st.kube()
    store = StoreServer(st.workdir).start()
    settings = {"max_waiters": 2000, "store_url": store.url}
    pair = [RouterProcess(st.lab, st.workdir, log_level="WARNING", **settings).start() for _ in range(2)]
    try:
        one = await _herd(st, kube, "one-router", [st.router], n)
        two = await _herd(st, kube, "two-replicas", pair, n)
    finally:
        for router in pair:
            router.stop()
        store.stop()
        await kube.close()
    table = Table(
        f"Router replicas: {n} streamed requests at once to one cold model (two bursts of {n // 2}), "
        "through one router and through two sharing a Redis",
        ["figure", "one router", "two replicas", "two / one"],
    )
    one_row, two_row = _figures(*one, n), _figures(*two, n)
    for name, first in one_row.items():
        second = two_row[name]
        table.add(name, first, second, second / first if first else float("nan"))
    return [table]


def _figures(streams: list[Timed], cpu: float, wakes: int, n: int) -> dict[str, float]:
    after_sent = _first_event(streams)
    return {
        "replies complete": sum(1 for s in streams if s.done and s.tokens > 0),
        "wakes sent": wakes,
        "first event after the request was sent, p50 ms": pct(after_sent, 50),
        "first event after the request was sent, p99 ms": pct(after_sent, 99),
        "router CPU per request, ms (all replicas)": 1000 * cpu / n,
    }

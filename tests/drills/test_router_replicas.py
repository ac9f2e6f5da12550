"""Drills 11 and 12: faults of the router's scale-out. Two router replicas share one line per
model through a real Redis (Debian's redis-server, as the chart's Valkey is on a homelab).

- 11: one replica is SIGKILLed mid-burst. Only its own connections end — at once, as a dead
  process's do: it cannot send an error event, so each of its clients sees its connection
  reset (the SDKs raise APIConnectionError) — while the other replica's streams, queued and
  generating, go on to their replies: the slots and places the dead one held come back when its
  leases expire.
- 12: the store is killed under load and started again (empty). Nothing hangs: every stream
  ends with its reply or an error event and [DONE]; meanwhile each replica queues on its own and
  says so; once the store is back, they share one line again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube
from hearth_sim.store import StoreServer

from ..cluster.conftest import eventually
from ..cluster.operator_helpers import OperatorProcess, delete_all_models, status
from ..cluster.router_helpers import CHAT, RouterProcess, chat, cold_model, replica_pair
from .record import Drill
from .streams import Followed, follow

LEASE = 1.0  # seconds: a dead replica's slots and places come back this soon
STREAM_DEADLINE = 120.0  # a stream not ended by then hung
CUT_DEADLINE = 5.0  # a killed replica's clients must know within this
killed = Drill(
    "11-router-replica-killed",
    "Router replica killed mid-burst",
    "SIGKILL of one of two router replicas while 40 streams (20 at each) are queued and generating",
    checked="the killed replica's connections end at once (reset; the SDKs raise APIConnectionError); "
    "every stream at the other replica ends with its reply; engine never over its concurrency",
)
store_lost = Drill(
    "12-store-restarted",
    "Shared store killed and restarted under load",
    "the replicas' store (Redis) killed while 40 streams queue and generate, started again empty",
    checked="every stream ends with its reply or an error event + [DONE]; /readyz and the metric say "
    "degraded while it is away; one line across replicas again once it is back",
)


@pytest.fixture
def pair(
    homelab: HomelabThread, store: StoreServer, tmp_path: Path
) -> Iterator[tuple[RouterProcess, RouterProcess]]:
    settings = {
        "store_url": store.url,
        "store_lease_seconds": LEASE,
        "store_timeout": 0.5,
        "max_waiters": 200,
    }
    with replica_pair(homelab, tmp_path, **settings) as pair:
        yield pair


@pytest.fixture
async def kube(homelab: HomelabThread, operator: OperatorProcess) -> AsyncIterator[Kube]:
    client = Kube(homelab.homelab.url)
    yield client
    await delete_all_models(client)
    await client.close()


def start(
    http: httpx.AsyncClient, router: RouterProcess, model: str, n: int
) -> tuple[list[Followed], list[asyncio.Task[None]]]:
    streams = [Followed() for _ in range(n)]
    return streams, [
        asyncio.create_task(follow(http, f"{router.url}{CHAT}", chat(model), s)) for s in streams
    ]


async def test_sigkill_of_one_replica_ends_only_its_own_streams(
    homelab: HomelabThread, kube: Kube, pair: tuple[RouterProcess, RouterProcess]
) -> None:
    a, b = pair
    # Four slots, an answer in 2 s (32 tokens at 16/s): 40 streams make a line ten answers long.
    await cold_model(kube, a, "shared", b, load=0.2, time_scale=1.0, concurrency=4, tokens_per_second=16)
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=STREAM_DEADLINE, limits=limits) as http:
        warm = Followed()
        await follow(http, f"{a.url}{CHAT}", chat("shared", max_tokens=1), warm)
        assert warm.whole, warm
        endpoint = (await status(kube, "shared"))["endpoints"][0]
        at_a, a_tasks = start(http, a, "shared", 20)
        at_b, b_tasks = start(http, b, "shared", 20)

        async def mid_burst() -> bool:
            a_now, b_now = {s.now for s in at_a}, {s.now for s in at_b}
            return "queued" in a_now and {"queued", "generating"} <= b_now

        await eventually(mid_burst, deadline=30, interval=0.02, what="both replicas queuing and generating")
        held_by_b = sum(not s.ended for s in at_b)
        assert b.proc is not None
        b.proc.kill()
        _, b_hung = await asyncio.wait(b_tasks, timeout=CUT_DEADLINE)
        _, a_hung = await asyncio.wait(a_tasks, timeout=STREAM_DEADLINE)
        for task in (*b_hung, *a_hung):
            task.cancel()
        stats = (await http.get(f"{endpoint}/stats")).json()

    killed.times += 1
    killed.hung = len(b_hung) + len(a_hung)
    killed.streams_lost = sum(not s.whole for s in at_a)
    killed.server_errors = sum(s.http_status >= 500 for s in (*at_a, *at_b))
    assert not killed.hung, f"{len(b_hung)} of the killed replica's and {len(a_hung)} of the other's hung"
    bad = [(s.http_status, s.statuses[-3:], s.last[:200]) for s in at_a if not s.whole]
    assert not bad, f"the surviving replica's streams cut: {bad[:5]}"
    cut = [s for s in at_b if not s.whole]
    assert len(cut) == held_by_b and all(s.cut for s in cut), [(s.statuses[-2:], s.cut) for s in cut]
    assert stats["peak_streams"] <= 4, stats


async def test_the_store_killed_and_restarted_under_load(
    kube: Kube,
    store: StoreServer,
    pair: tuple[RouterProcess, RouterProcess],
) -> None:
    a, b = pair
    await cold_model(kube, a, "steady", b, load=0.2, time_scale=1.0, concurrency=2, tokens_per_second=16)
    await cold_model(kube, a, "single", b, load=0.2, time_scale=1.0, concurrency=1, tokens_per_second=64)
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=STREAM_DEADLINE, limits=limits) as http:

        async def degraded(router: RouterProcess) -> bool:
            return "degraded" in (await http.get(f"{router.url}/readyz")).json()

        for model in ("steady", "single"):
            warm = Followed()
            await follow(http, f"{a.url}{CHAT}", chat(model, max_tokens=1), warm)
            assert warm.whole, warm
        at_a, a_tasks = start(http, a, "steady", 20)
        at_b, b_tasks = start(http, b, "steady", 20)

        async def loaded() -> bool:
            return {"queued", "generating"} <= {s.now for s in (*at_a, *at_b)}

        await eventually(loaded, deadline=30, interval=0.02, what="streams queued and generating")
        store.kill()

        async def both_alone() -> bool:
            return await degraded(a) and await degraded(b)

        await eventually(both_alone, deadline=15, interval=0.1, what="both replicas to say they are alone")
        assert "hearth_router_store_up 0.0" in (await http.get(f"{a.url}/metrics")).text
        alone, alone_tasks = start(http, a, "steady", 4)  # while it is away: this replica's line
        store.start()

        async def both_sharing() -> bool:
            return not await degraded(a) and not await degraded(b)

        await eventually(both_sharing, deadline=30 * LEASE, what="both replicas sharing again")
        tasks = [*a_tasks, *b_tasks, *alone_tasks]
        _, hung = await asyncio.wait(tasks, timeout=STREAM_DEADLINE)
        for task in hung:
            task.cancel()
        # Sharing again: one line, its places counted across both replicas (a split line of
        # six requests per replica, one slot, stops at place 5).
        again_a, again_a_tasks = start(http, a, "single", 6)
        again_b, again_b_tasks = start(http, b, "single", 6)
        _, hung_again = await asyncio.wait([*again_a_tasks, *again_b_tasks], timeout=STREAM_DEADLINE)

    everything = [*at_a, *at_b, *alone, *again_a, *again_b]
    store_lost.times += 1
    store_lost.hung = len(hung) + len(hung_again)
    store_lost.streams_lost = sum(not (s.whole or s.told_error) for s in everything)
    store_lost.server_errors = sum(s.http_status >= 500 for s in everything)
    assert not store_lost.hung, f"{len(hung)} streams hung"
    bad = [
        (s.http_status, s.statuses[-3:], s.last[:200]) for s in everything if not (s.whole or s.told_error)
    ]
    assert not bad, f"streams cut without an error event: {bad[:5]}"
    assert all(s.whole for s in (*again_a, *again_b)), "after the store came back"
    places = [p for s in (*again_a, *again_b) for p in s.places]
    assert places and max(places) > 5, f"places {sorted(places)}: two lines, not one"


def test_the_replica_drills_are_recorded() -> None:
    killed.save()
    store_lost.save()

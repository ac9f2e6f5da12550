"""The line router replicas share through a real Redis (Debian's redis-server): one queue per
model however many replicas hold its requests, slots as leases a dead replica loses, and a
replica that queues on its own — saying so — while the store is away, then shares again."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry, Gauge

from hearth_router.shared_line import SharedLine
from hearth_router.slots import Ticket
from hearth_sim.store import StoreServer

from .conftest import eventually

LEASE = 1.0  # seconds: a heartbeat every 0.2 s, a dead replica's entries gone within 1 s
TIMEOUT = 0.5  # seconds a store step may take


def gauge() -> Gauge:
    return Gauge("store_up", "", registry=CollectorRegistry())


@asynccontextmanager
async def replicas(store: StoreServer, n: int = 2) -> AsyncIterator[list[SharedLine]]:
    lines = [
        SharedLine(store.url, timeout=TIMEOUT, lease_seconds=LEASE, store_up=gauge(), replica=f"r{i}")
        for i in range(n)
    ]
    for line in lines:
        await line.start()
    try:
        yield lines
    finally:
        for line in lines:
            await line.close()


async def joined(line: SharedLine, key: str = "default/m", limit: int = 100) -> Ticket:
    ticket = await line.join(key, limit)
    assert isinstance(ticket, Ticket), f"turned away: {ticket} waiting"
    return ticket


def abandon(line: SharedLine) -> None:
    """The replica dies as a SIGKILL would leave it: no release, no heartbeat, from now on."""
    for task in line._tasks:
        task.cancel()
    line.tickets.clear()


async def test_places_and_the_limit_count_every_replicas_requests(store: StoreServer) -> None:
    async with replicas(store) as (a, b):
        assert a.shared and b.shared and a.degraded is None
        first, second = await joined(a), await joined(b)
        third = await joined(a)
        assert [await a.position(first), await b.position(second), await a.position(third)] == [1, 2, 3]
        # The admission limit is the whole line's: three wait, so a fourth is turned away wherever.
        assert await b.join("default/m", 3) == 3
        assert await a.join("default/m", 3) == 3
        # Another model's line is its own.
        assert await b.position(await joined(b, "default/other")) == 1


async def test_a_freed_slot_goes_to_the_head_of_the_whole_line(store: StoreServer) -> None:
    async with replicas(store) as (a, b):
        first, second, third = await joined(a), await joined(b), await joined(a)
        assert await b.grant(second, ["e1"], 1) is None, "nobody overtakes, from any replica"
        assert await a.grant(first, ["e1"], 1) == "e1"
        assert await b.grant(second, ["e1"], 1) is None, "the only slot is held by the other replica"
        assert await a.position(third) == 2
        # The grant told the new head (on b) to try, in case a slot was left: none was.
        await eventually(lambda: _told(second), what="the grant's turn message")
        second.turn.clear()
        turn = asyncio.create_task(b.wait(second, 30))
        a.release(first)
        # The release tells the head of the line, on the other replica, that its turn came.
        await asyncio.wait_for(turn, 10)
        assert second.turn.is_set(), "woken by the release, not by its own timer"
        assert await b.grant(second, ["e1"], 1) == "e1"
        assert await a.position(third) == 1
        assert await a.grant(third, ["e1"], 1) is None, "concurrency 1 holds across replicas"
        await eventually(lambda: _settled(a, "e1", 1), what="the other replica's slot counted")
        assert a.in_flight(["e1"]) == 1 and a.waiting("default/m") == 1


async def _told(ticket: Ticket) -> bool:
    return ticket.turn.is_set()


async def _settled(line: SharedLine, endpoint: str, n: int) -> bool:
    return line.inflight.get(endpoint) == n


async def test_a_request_its_engine_refused_keeps_its_place(store: StoreServer) -> None:
    async with replicas(store) as (a, b):
        first, second = await joined(a), await joined(b)
        assert await a.grant(first, ["e1"], 1) == "e1"
        await a.requeue(first)
        assert first.endpoint is None
        assert [await a.position(first), await b.position(second)] == [1, 2]
        assert await b.grant(second, ["e1"], 1) is None
        assert await a.grant(first, ["e1"], 1) == "e1"


async def test_a_dead_replicas_slots_and_places_expire_within_a_lease(store: StoreServer) -> None:
    async with replicas(store) as (a, b):
        holder, lost = await joined(a), await joined(a)
        waiter = await joined(b)
        assert await a.grant(holder, ["e1"], 1) == "e1"
        abandon(a)
        assert await b.position(waiter) == 2
        # Without a heartbeat the holder's lease and the dead place behind it run out; the
        # survivor's request is first and takes the slot, with no one releasing anything.
        granted = await eventually(lambda: b.grant(waiter, ["e1"], 1), deadline=10 * LEASE, what="the slot")
        assert granted == "e1" and await b.position(lost) == 0


async def test_one_wake_per_cold_period_across_replicas(store: StoreServer) -> None:
    async with replicas(store) as (a, b):
        assert await a.claim_wake("default/m", 30)
        assert not await b.claim_wake("default/m", 30), "the other replica sent this period's wake"
        assert await b.claim_wake("default/other", 30)
        a.wake_over("default/m")  # it loaded: the next cold period is woken again
        await eventually(lambda: b.claim_wake("default/m", 30), what="a new period's wake claimed")


async def test_measured_answer_times_reach_every_replica(store: StoreServer) -> None:
    async with replicas(store) as (a, b):
        await joined(b)  # b has a line for the model, so its heartbeat reads the averages
        a.record_answer("default/m", 4.0, 20.0)
        a.record_answer("default/m", 9.0, None)
        assert a.answer_seconds("default/m") == 5.0
        await eventually(lambda: _answer(b), what="the averages at the other replica")
        assert b.answer_seconds("default/m") == 5.0 and b.tokens_per_second("default/m") == 20.0


async def _answer(line: SharedLine) -> bool:
    return line.answer_seconds("default/m") is not None


async def test_a_dead_store_turns_replicas_to_their_own_queues_and_back(store: StoreServer) -> None:
    async with replicas(store) as (a, b):
        waiting, holding = await joined(a), await joined(a)
        behind = await joined(b)
        assert await a.grant(waiting, ["e1"], 2) == "e1"
        store.kill()
        # The next step finds the store gone and is taken locally; the line says why.
        mine = await joined(a)
        assert not a.shared and a.degraded is not None and "unreachable" in a.degraded
        assert a.store_up is not None and a.store_up._value.get() == 0
        # Its own queue keeps its order, and counts only its own requests now.
        assert [await a.position(holding), await a.position(mine)] == [1, 2]
        assert await a.grant(holding, ["e1"], 2) == "e1"
        assert await a.grant(mine, ["e1"], 2) is None, "the slot it held before still counts"
        store.start()
        await eventually(lambda: _shared(a, b), deadline=20 * LEASE, what="both replicas sharing again")
        # Back in one line: b's request (joined first) is ahead of a's that joined meanwhile.
        assert [await b.position(behind), await a.position(mine)] == [1, 2]
        assert a.store_up._value.get() == 1
        # And the slots held are in the store again: two of two, so neither waiter gets one.
        assert await b.grant(behind, ["e1"], 2) is None
        a.release(waiting)
        granted = await eventually(lambda: b.grant(behind, ["e1"], 2), what="the freed slot")
        assert granted == "e1"


async def _shared(*lines: SharedLine) -> bool:
    return all(line.shared for line in lines)


async def test_a_store_that_stops_answering_holds_nothing_up(store: StoreServer) -> None:
    async with replicas(store) as (a, _):
        ticket = await joined(a)
        assert store.proc is not None
        os.kill(store.proc.pid, signal.SIGSTOP)  # frozen: connections open, nothing answers
        try:
            # Each step is bounded by the store timeout, then taken locally.
            assert await asyncio.wait_for(a.position(ticket), 10 * TIMEOUT) == 1
            assert not a.shared
            assert await asyncio.wait_for(a.grant(ticket, ["e1"], 1), 10 * TIMEOUT) == "e1"
            assert await asyncio.wait_for(a.claim_wake("default/m", 30), 10 * TIMEOUT)
        finally:
            os.kill(store.proc.pid, signal.SIGCONT)
        await eventually(lambda: _shared(a), deadline=20 * LEASE, what="sharing again")


async def test_a_store_restarted_empty_is_filled_again_by_the_replicas(store: StoreServer) -> None:
    async with replicas(store) as (a, b):
        first, second = await joined(a), await joined(b)
        assert await a.grant(first, ["e1"], 1) == "e1"
        assert await b.grant(second, ["e1"], 1) is None
        store.kill()
        store.start()  # empty: no lines, no leases
        # Within heartbeats the replicas notice (another incarnation) and write back what they
        # hold: a's slot still counts, b's request is still waiting in the one line.
        await eventually(lambda: _position(b, second, 1), deadline=20 * LEASE, what="b's place back")
        await eventually(lambda: _settled(b, "e1", 1), deadline=20 * LEASE, what="a's slot written back")
        assert await b.grant(second, ["e1"], 1) is None, "a's slot counts"
        a.release(first)
        assert await eventually(lambda: b.grant(second, ["e1"], 1), what="the slot") == "e1"


async def _position(line: SharedLine, ticket: Ticket, place: int) -> bool:
    return line.shared and await line.position(ticket) == place

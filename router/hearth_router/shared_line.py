"""The line in a store every router replica shares (Redis or Valkey): one queue per model,
exact places across replicas, the admission limit across replicas, engine slots as leases that
expire with their holder, the measured answer times and the wake-once guard. The steps are the
Lua scripts of store_scripts.py, each run whole by the store.

Degraded, never wrong: a store call that fails or takes past `timeout` turns this replica to
queues of its own at once (a `Slots` rebuilt from the tickets it holds, in their order), and
`shared` says so — the stream's messages stop claiming a place in a global line, `/readyz` and
the `hearth_router_store_up` metric tell. The heartbeat keeps trying the store; once it answers,
what this replica holds is written back and the line is shared again. A store that restarted
empty is refilled the same way (each replica writes back its own places and leases).

Why leases: a replica that dies (a SIGKILL, a lost node) never gives its slots back; its
heartbeat stops, and within `lease_seconds` its slots and places are gone from the store.

Why this size: every step of the Line and the switch between shared and local read and write
the same tickets under one rule (a step that raced a switch is retaken locally, checked by
`generation`); the connection, the key names and the turn channel are store_client.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from hearth_router.line import AnswerTimes
from hearth_router.slots import Slots, Ticket
from hearth_router.store_client import FAILURES, StoreClient

log = logging.getLogger("hearth.router.store")
PLACES_FRESH = 0.25  # seconds a place read from the store is told again (places are told once a second)


class _Local(Exception):
    """This step is taken locally: the store is away (or went away while it ran)."""


def replica_name() -> str:
    """Unique per process: the pod's name (its hostname) and a few random letters."""
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"


class SharedLine:
    """The Line over the store (Why this size: see the module's docstring)."""

    def __init__(
        self,
        url: str,
        prefix: str = "hearth",
        timeout: float = 2.0,
        lease_seconds: float = 5.0,
        store_up: Any = None,  # a prometheus Gauge: 1 shared, 0 on its own queues
        replica: str | None = None,
    ) -> None:
        self.replica = replica or replica_name()
        self.prefix, self.timeout, self.lease_seconds = prefix, timeout, lease_seconds
        self.ttl_ms = int(lease_seconds * 1000)
        self.client = StoreClient(url, prefix, timeout, lease_seconds / 5)
        self.store_up = store_up
        self.tickets: dict[str, Ticket] = {}  # this replica's: waiting or holding a slot
        self.local: Slots | None = Slots()  # not None while the store is away (also before start)
        self.reason: str | None = "not connected to the shared store yet"
        self.generation = 0  # +1 at each switch between shared and local
        self.epoch: str | None = None  # the store incarnation this replica's entries are in
        self.answers = AnswerTimes()
        self._numbers = itertools.count(1)
        self._counts: dict[str, int] = {}  # line key or endpoint → as the store last said
        # line key → (when, ticket id → place): this replica's places in that line, read in one step
        self._places: dict[str, tuple[float, dict[str, int]]] = {}
        self._reading: dict[str, asyncio.Future[None]] = {}  # line key → the read under way
        self._keys: set[str] = set()  # model keys this replica has lines for
        self._endpoints: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    # --- the Line interface ---------------------------------------------------------------------

    @property
    def shared(self) -> bool:
        return self.local is None

    @property
    def degraded(self) -> str | None:
        return self.reason

    @property
    def inflight(self) -> Mapping[str, int]:
        if self.local is not None:
            return self.local.inflight
        return {e: self._counts.get(e, 0) for e in self._endpoints}

    async def join(self, key: str, limit: int) -> Ticket | int:
        ticket = Ticket(key, id=f"{self.replica}/{next(self._numbers)}")
        self._keys.add(key)
        try:
            joined, value = await self._run(
                "JOIN", [self.client.q(key), self.client.qx(key)], [ticket.id, limit, self.ttl_ms]
            )
        except _Local:
            assert self.local is not None
            waiting = self.local.waiting(key)
            if waiting >= limit:
                return waiting
            self.local.add(ticket)
        else:
            if not joined:
                return int(value)
            ticket.score = int(value)
        self.tickets[ticket.id] = ticket
        return ticket

    async def grant(self, ticket: Ticket, endpoints: list[str], concurrency: int) -> str | None:
        if self.local is None:
            self._endpoints.update(endpoints)
            ticket.turn.clear()  # before the step: a turn told while it runs is not missed
            args = [
                ticket.id,
                concurrency,
                self.client.lease(""),
                self.ttl_ms,
                self.client.channel,
                *sorted(endpoints),
            ]
            try:
                keys = [
                    self.client.q(ticket.key),
                    self.client.qx(ticket.key),
                    self.client.name("pause"),
                    self.client.name("epoch"),
                ]
                got = await self._run("GRANT", keys, args)
            except _Local:
                pass
            else:
                if ticket.id not in self.tickets:  # released while the step ran: give it back
                    self._forget(ticket, got.decode() if got else None)
                    return None
                ticket.endpoint = got.decode() if got else None
                if got:
                    self._places.pop(ticket.key, None)  # the line moved: places are read again
                return ticket.endpoint
        assert self.local is not None
        return self.local.grant(ticket, endpoints, concurrency)

    async def position(self, ticket: Ticket) -> int:
        """Places are read for all of this replica's waiters in a line at once, and kept for
        PLACES_FRESH: a thousand waiters asking once a second cost a few steps, not a thousand."""
        key = ticket.key
        if ticket.id not in self.tickets:
            return 0
        for _ in range(3):  # a ticket that joined while a read was under way waits for the next
            if self.local is not None:
                break
            known = self._places.get(key)
            if known is not None and time.monotonic() - known[0] < PLACES_FRESH and ticket.id in known[1]:
                return known[1][ticket.id]
            reading = self._reading.get(key)
            if reading is None:
                reading = self._reading[key] = asyncio.ensure_future(self._read_places(key))
                reading.add_done_callback(partial(self._read_done, key))
            with contextlib.suppress(_Local):
                await asyncio.shield(reading)
        if self.local is None:
            known = self._places.get(key)
            return known[1].get(ticket.id, 0) if known is not None else 0
        return self.local.position(ticket)

    def _read_done(self, key: str, _: object) -> None:
        self._reading.pop(key, None)

    async def _read_places(self, key: str) -> None:
        ids = [t.id for t in self.tickets.values() if t.key == key and t.endpoint is None]
        read_at = time.monotonic()
        places, waiting = await self._run("PLACES", [self.client.q(key), self.client.qx(key)], ids)
        self._places[key] = (read_at, {i: int(p) for i, p in zip(ids, places, strict=True)})
        self._counts[key] = int(waiting)

    async def requeue(self, ticket: Ticket) -> None:
        endpoint = ticket.endpoint
        if self.local is None and endpoint is not None:
            keys = [self.client.q(ticket.key), self.client.qx(ticket.key), self.client.lease(endpoint)]
            try:
                await self._run("REQUEUE", keys, [ticket.id, ticket.score, self.ttl_ms, self.client.channel])
            except _Local:
                pass
            else:
                ticket.endpoint = None
                self._places.pop(ticket.key, None)
                return
        assert self.local is not None  # the switch counted the slot it holds: give it back here
        self.local.release(ticket)
        self.local.enqueue_front(ticket)

    def release(self, ticket: Ticket) -> None:
        if self.tickets.pop(ticket.id, None) is None:
            return
        if self.local is not None:
            self.local.release(ticket)
            return
        endpoint, ticket.endpoint = ticket.endpoint, None
        self._places.pop(ticket.key, None)
        self._forget(ticket, endpoint)

    def _forget(self, ticket: Ticket, endpoint: str | None) -> None:
        """Leave the store's line or slot, in the background (release never waits). Should the
        store not take it, the entry is no longer renewed and expires within a lease."""
        q = self.client.q(ticket.key)
        keys = [q, self.client.qx(ticket.key), self.client.lease(endpoint) if endpoint else q]
        self._spawn(self._quietly("RELEASE", keys, [ticket.id, self.client.channel]))

    async def wait(self, ticket: Ticket, within: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await ticket.turn.wait()

    def waiting(self, key: str) -> int:
        if self.local is not None:
            return self.local.waiting(key)
        return self._counts.get(key, 0)

    def in_flight(self, endpoints: list[str]) -> int:
        return sum(self.inflight.get(e, 0) for e in endpoints)

    def record_answer(self, key: str, seconds: float, tokens_per_second: float | None) -> None:
        self.answers.record(key, seconds, tokens_per_second)  # at once here; the others at their heartbeat
        if self.local is None:
            rate = f"{tokens_per_second}" if tokens_per_second else ""
            self._spawn(self._quietly("RECORD", [self.client.name("avg", key)], [f"{seconds}", rate]))

    def answer_seconds(self, key: str) -> float | None:
        return self.answers.seconds.get(key)

    def tokens_per_second(self, key: str) -> float | None:
        return self.answers.rate.get(key)

    async def claim_wake(self, key: str, seconds: float) -> bool:
        if self.local is not None:
            return True  # on its own queues: each replica wakes (the operator takes a wake twice)
        try:
            claimed = await self.client.bounded(
                partial(
                    self.client.redis.set,
                    self.client.name("wake", key),
                    self.replica,
                    nx=True,
                    px=int(seconds * 1000),
                )
            )
        except FAILURES as exc:
            self._lose(exc)
            return True
        return bool(claimed)

    def wake_over(self, key: str) -> None:
        if self.local is None:
            self._spawn(self._delete(self.client.name("wake", key)))

    # --- running ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (or start on its own queues, trying again at each heartbeat)."""
        await self._connect()
        self._tasks = [
            asyncio.create_task(self._beating(), name="store heartbeat"),
            asyncio.create_task(self._listening(), name="store turns"),
        ]

    async def close(self) -> None:
        """Stop; what this replica still holds leaves the store (or expires within a lease)."""
        for task in self._tasks:
            task.cancel()
        for ticket in list(self.tickets.values()):
            self.release(ticket)
        if self._background:
            await asyncio.wait(self._background, timeout=self.timeout)
        await self.client.close()

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One step in the store, bounded by `timeout`; raises _Local when the line is (or just
        went) local — then the caller takes the step on the local Slots."""
        if self.local is not None:
            raise _Local
        generation = self.generation
        try:
            result = await self.client.step(name, keys, args)
        except FAILURES as exc:
            self._lose(exc)
            raise _Local from exc
        if generation != self.generation:
            raise _Local  # the line went local while the step ran: the local Slots decide
        return result

    async def _quietly(self, name: str, keys: list[str], args: list[Any]) -> None:
        with contextlib.suppress(_Local):
            await self._run(name, keys, args)

    async def _delete(self, key: str) -> None:
        with contextlib.suppress(*FAILURES):
            await self.client.bounded(partial(self.client.redis.delete, key))

    def _spawn(self, step: Awaitable[None]) -> None:
        task = asyncio.ensure_future(step)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _lose(self, exc: BaseException) -> None:
        """The store failed a step: this replica's line goes local, in the order it had."""
        if self.local is not None:
            return
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.warning(
            "the shared store is unreachable (%s): queueing on this replica's own until it is back", why
        )
        self.reason = f"the shared store is unreachable ({why}); queueing on this replica's own"
        local = Slots()
        for ticket in sorted(self.tickets.values(), key=lambda t: (t.score, t.id)):
            if ticket.endpoint is None:
                local.add(ticket)
            else:
                local.hold(ticket)
        self.local = local
        self._switched(0)

    def _switched(self, up: int) -> None:
        self.generation += 1
        if self.store_up is not None:
            self.store_up.set(up)
        for ticket in self.tickets.values():
            ticket.turn.set()  # each waiter tries again at once, in the line it is now in

    async def _connect(self) -> None:
        """Write what this replica holds into the store (where missing) and share the line.
        Repeated until nothing changed locally while it ran, so no ticket is left out."""
        assert self.local is not None
        for _ in range(5):
            before = [(t.id, t.endpoint) for t in self.tickets.values()]
            try:
                await self._restore()
            except FAILURES as exc:
                self.reason = f"the shared store is unreachable ({type(exc).__name__}: {exc})"
                if self.store_up is not None:
                    self.store_up.set(0)
                return
            if before == [(t.id, t.endpoint) for t in self.tickets.values()]:
                break
        log.info("sharing the line through the store as replica %s", self.replica)
        self.local, self.reason = None, None
        self._switched(1)

    async def _restore(self) -> None:
        # A new incarnation's name, taken only if the store has none (it is new, or restarted
        # empty): every other replica's heartbeat then finds a name it did not write to, and
        # writes back what it holds too.
        args: list[Any] = [uuid.uuid4().hex, self.ttl_ms, self.epoch or ""]
        for t in self.tickets.values():
            q, qx = self.client.q(t.key), self.client.qx(t.key)
            args += (
                [q, qx, t.id, t.score] if t.endpoint is None else ["", self.client.lease(t.endpoint), t.id, 0]
            )
        keys = [self.client.name("epoch"), self.client.name("pause"), self.client.name("began")]
        epoch = await self.client.step("RESTORE", keys, args)
        self.epoch = epoch.decode() if isinstance(epoch, bytes) else str(epoch)

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 5)
            if self.local is not None:
                await self._connect()
                continue
            with contextlib.suppress(_Local):
                await self._beat()

    async def _beat(self) -> None:
        """Renew this replica's places and leases; read the counts and averages the others wrote."""
        args: list[Any] = [self.epoch, self.ttl_ms]
        for t in self.tickets.values():
            args += [self.client.qx(t.key) if t.endpoint is None else self.client.lease(t.endpoint), t.id]
        if not await self._run("HEARTBEAT", [self.client.name("epoch")], args):
            log.warning(
                "the shared store lost its line (restarted empty?): writing back what this replica holds"
            )
            await self._in_store(self._restore)
        keys, endpoints = sorted(self._keys), sorted(self._endpoints)
        counts = await self._run(
            "COUNTS",
            [*(self.client.q(k) for k in keys), *(self.client.lease(e) for e in endpoints)],
            [len(keys)],
        )
        self._counts = {name: int(n) for name, n in zip([*keys, *endpoints], counts, strict=True)}
        for key in keys:
            got = await self._in_store(partial(self.client.redis.hgetall, self.client.name("avg", key)))
            if b"seconds" in got:
                self.answers.seconds[key] = float(got[b"seconds"])
            if b"rate" in got:
                self.answers.rate[key] = float(got[b"rate"])

    async def _in_store(self, step: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await self.client.bounded(step)
        except FAILURES as exc:
            self._lose(exc)
            raise _Local from exc

    async def _listening(self) -> None:
        """Turns told by any replica's step: the ticket now first in a line tries at once (it
        would anyway within a second, on its own next try)."""
        async for ticket_id in self.client.turns():
            ticket = self.tickets.get(ticket_id)
            if ticket is not None:
                ticket.turn.set()

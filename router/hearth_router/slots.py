"""Concurrency per replica and a FIFO queue per model.

Each replica serves at most `concurrency` requests at once (docs/architecture.md); the rest wait in
arrival order. A ticket is granted only when it is first in its model's queue and a replica
has a free slot, so nobody overtakes. Places in line are computed once per change of a queue,
not once per waiter: a thousand waiters asking their place each second would otherwise walk
the queue a thousand times.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from dataclasses import dataclass, field

from hearth_router.routing import pick

_numbers = itertools.count(1)


@dataclass(eq=False)
class Ticket:
    key: str
    endpoint: str | None = None
    id: str = field(default_factory=lambda: str(next(_numbers)))  # unique in this process
    # Its place in line: microseconds of the wall clock when it joined (the shared store's clock
    # when there is one), kept when it goes back in line so it keeps the place it had earned.
    score: int = field(default_factory=lambda: time.time_ns() // 1000)
    # Set when it may be first in line with a free slot; cleared by each grant attempt, so a
    # release between an attempt and the wait that follows is not missed.
    turn: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Slots:
    inflight: dict[str, int] = field(default_factory=dict)  # endpoint → requests in flight
    queues: dict[str, deque[Ticket]] = field(default_factory=dict)  # model key → waiting tickets
    _places: dict[str, dict[Ticket, int]] = field(default_factory=dict)  # model key → places, until a change

    def enqueue(self, key: str) -> Ticket:
        ticket = Ticket(key)
        self.add(ticket)
        return ticket

    def add(self, ticket: Ticket) -> None:
        """Join at the end of the line."""
        key = ticket.key
        self.queues.setdefault(key, deque()).append(ticket)
        places = self._places.get(key)
        if places is not None:  # joining at the end moves nobody: the places stay good
            places[ticket] = len(places) + 1

    def enqueue_front(self, ticket: Ticket) -> None:
        """Back to the head of the line: a request whose engine could not be reached keeps the
        place it had earned."""
        self.queues.setdefault(ticket.key, deque()).appendleft(ticket)
        self._places.pop(ticket.key, None)

    def position(self, ticket: Ticket) -> int:
        """1-based place among the requests waiting for this model; 0 once it left the line."""
        places = self._places.get(ticket.key)
        if places is None:
            queue = self.queues.get(ticket.key) or ()
            places = self._places[ticket.key] = {t: i for i, t in enumerate(queue, 1)}
        return places.get(ticket, 0)

    def waiting(self, key: str) -> int:
        return len(self.queues.get(key) or ())

    def grant(self, ticket: Ticket, endpoints: list[str], concurrency: int) -> str | None:
        ticket.turn.clear()
        queue = self.queues.get(ticket.key)
        if not queue or queue[0] is not ticket:
            return None
        endpoint = pick(endpoints, self.inflight, concurrency)
        if endpoint is None:
            return None
        queue.popleft()
        self._places.pop(ticket.key, None)
        ticket.endpoint = endpoint
        self.inflight[endpoint] = self.inflight.get(endpoint, 0) + 1
        self._signal(ticket.key)  # the next in line may go too, if a slot is left
        return endpoint

    def release(self, ticket: Ticket) -> None:
        """Give the slot back, or leave the queue (a cancelled or failed request)."""
        if ticket.endpoint is not None:
            n = self.inflight.get(ticket.endpoint, 1) - 1
            if n > 0:
                self.inflight[ticket.endpoint] = n
            else:
                self.inflight.pop(ticket.endpoint, None)
            ticket.endpoint = None
        else:
            queue = self.queues.get(ticket.key)
            if queue and ticket in queue:
                queue.remove(ticket)
                self._places.pop(ticket.key, None)
        self._signal(ticket.key)

    def hold(self, ticket: Ticket) -> None:
        """Count a slot `ticket` already holds (taken while the line was shared elsewhere)."""
        if ticket.endpoint is not None:
            self.inflight[ticket.endpoint] = self.inflight.get(ticket.endpoint, 0) + 1

    def in_flight(self, endpoints: list[str]) -> int:
        return sum(self.inflight.get(e, 0) for e in endpoints)

    def _signal(self, key: str) -> None:
        """Wake the first in line only: it is the one a freed slot can go to. Waking every
        waiter at each grant would cost a thousand wake-ups per answer in a long queue; the
        others learn their new place on their own once-a-second update."""
        queue = self.queues.get(key)
        if queue:
            queue[0].turn.set()

    async def wait(self, ticket: Ticket, within: float) -> None:
        """Return when `ticket` may be granted a slot, or after `within` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await ticket.turn.wait()

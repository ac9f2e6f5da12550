"""Concurrency per replica and a FIFO queue per model.

Each replica serves at most `concurrency` requests at once (DESIGN.md); the rest wait in
arrival order. A ticket is granted only when it is first in its model's queue and a replica
has a free slot, so nobody overtakes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hearth_router.routing import pick
from hearth_router.signals import Signal


@dataclass(eq=False)
class Ticket:
    key: str
    endpoint: str | None = None


@dataclass
class Slots:
    inflight: dict[str, int] = field(default_factory=dict)  # endpoint → requests in flight
    queues: dict[str, deque[Ticket]] = field(default_factory=dict)  # model key → waiting tickets
    _freed: dict[str, Signal] = field(default_factory=dict)  # model key → a slot or place changed

    def enqueue(self, key: str) -> Ticket:
        ticket = Ticket(key)
        self.queues.setdefault(key, deque()).append(ticket)
        return ticket

    def position(self, ticket: Ticket) -> int:
        """1-based place among the requests waiting for this model."""
        queue = self.queues.get(ticket.key) or deque()
        return queue.index(ticket) + 1 if ticket in queue else 0

    def waiting(self, key: str) -> int:
        return len(self.queues.get(key) or ())

    def grant(self, ticket: Ticket, endpoints: list[str], concurrency: int) -> str | None:
        queue = self.queues.get(ticket.key)
        if not queue or queue[0] is not ticket:
            return None
        endpoint = pick(endpoints, self.inflight, concurrency)
        if endpoint is None:
            return None
        queue.popleft()
        ticket.endpoint = endpoint
        self.inflight[endpoint] = self.inflight.get(endpoint, 0) + 1
        self._signal(ticket.key)  # the next in line may go too
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
        self._signal(ticket.key)

    def in_flight(self, endpoints: list[str]) -> int:
        return sum(self.inflight.get(e, 0) for e in endpoints)

    def _signal(self, key: str) -> None:
        signal = self._freed.get(key)
        if signal is not None:
            signal.notify()

    async def wait(self, key: str, within: float) -> None:
        """Return when a slot or a place in the queue of `key` changes, or after `within` seconds."""
        await self._freed.setdefault(key, Signal()).wait(within)

"""The line: each model's queue, its admission limit, the engine slots per endpoint, the measured
answer times behind the queue's estimates, and the wake-once guard — everything requests of one
model share while they wait.

Two kinds behind one interface (`Line`): `LocalLine`, in this process's memory (one router
replica, the default), and `shared_line.SharedLine`, in a Redis/Valkey store that every replica
shares (a queue that is one queue however many replicas take the requests; it falls back to a
`LocalLine`'s structures of its own while the store is away).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from hearth_router.slots import Slots, Ticket


class Line(Protocol):
    @property
    def shared(self) -> bool:
        """True when places in line count every replica's requests (False: only this router's)."""

    @property
    def degraded(self) -> str | None:
        """Why this line is not the one it should be (a shared store away); None when it is."""

    @property
    def inflight(self) -> Mapping[str, int]:
        """Endpoint → requests in flight there (every replica's, when shared)."""

    async def join(self, key: str, limit: int) -> Ticket | int:
        """A place at the end of `key`'s line; or, when `limit` already wait, how many do."""

    async def grant(self, ticket: Ticket, endpoints: list[str], concurrency: int) -> str | None:
        """A slot for `ticket` if it is first in line and an endpoint has one free; sets
        ticket.endpoint."""

    async def position(self, ticket: Ticket) -> int:
        """1-based place among the requests waiting for its model; 0 once it left the line."""

    async def requeue(self, ticket: Ticket) -> None:
        """Give the slot back and wait again, at the place it had earned (its engine refused it)."""

    def release(self, ticket: Ticket) -> None:
        """Give the slot back, or leave the line. Idempotent; never waits."""

    async def wait(self, ticket: Ticket, within: float) -> None:
        """Return when `ticket` may be granted a slot, or after `within` seconds."""

    def waiting(self, key: str) -> int:
        """Requests waiting in `key`'s line (as last known, when shared)."""

    def in_flight(self, endpoints: list[str]) -> int: ...

    def record_answer(self, key: str, seconds: float, tokens_per_second: float | None) -> None:
        """A measured answer: the moving averages behind the queue's estimates."""

    def answer_seconds(self, key: str) -> float | None: ...

    def tokens_per_second(self, key: str) -> float | None: ...

    async def start(self) -> None:
        """Begin (connect to the store, if any); returns without waiting for a store that is away."""

    async def close(self) -> None:
        """Stop; what this replica holds is given back."""

    async def claim_wake(self, key: str, seconds: float) -> bool:
        """Whether this replica is the one to send `key`'s wake now (one per `seconds`)."""

    def wake_over(self, key: str) -> None:
        """The model is loading or up: the next cold period may be woken again."""


def average(averages: dict[str, float], key: str, value: float) -> float:
    """An exponential moving average: the last answers weigh most (a fifth each)."""
    previous = averages.get(key)
    averages[key] = value if previous is None else 0.8 * previous + 0.2 * value
    return averages[key]


@dataclass
class AnswerTimes:
    seconds: dict[str, float] = field(default_factory=dict)  # key → moving average of an answer
    rate: dict[str, float] = field(default_factory=dict)  # key → moving average of tokens/s

    def record(self, key: str, seconds: float, tokens_per_second: float | None) -> None:
        average(self.seconds, key, seconds)
        if tokens_per_second:
            average(self.rate, key, tokens_per_second)


@dataclass
class LocalLine:
    """The line in this process's memory. Its coroutines never suspend: a burst's admission
    checks and counts each request in one step, so exactly `limit` get in."""

    slots: Slots = field(default_factory=Slots)
    answers: AnswerTimes = field(default_factory=AnswerTimes)

    @property
    def shared(self) -> bool:
        return False

    @property
    def degraded(self) -> str | None:
        return None

    @property
    def inflight(self) -> Mapping[str, int]:
        return self.slots.inflight

    async def join(self, key: str, limit: int) -> Ticket | int:
        waiting = self.slots.waiting(key)
        if waiting >= limit:
            return waiting
        return self.slots.enqueue(key)

    async def grant(self, ticket: Ticket, endpoints: list[str], concurrency: int) -> str | None:
        return self.slots.grant(ticket, endpoints, concurrency)

    async def position(self, ticket: Ticket) -> int:
        return self.slots.position(ticket)

    async def requeue(self, ticket: Ticket) -> None:
        self.slots.release(ticket)
        self.slots.enqueue_front(ticket)

    def release(self, ticket: Ticket) -> None:
        self.slots.release(ticket)

    async def wait(self, ticket: Ticket, within: float) -> None:
        await self.slots.wait(ticket, within)

    def waiting(self, key: str) -> int:
        return self.slots.waiting(key)

    def in_flight(self, endpoints: list[str]) -> int:
        return self.slots.in_flight(endpoints)

    def record_answer(self, key: str, seconds: float, tokens_per_second: float | None) -> None:
        self.answers.record(key, seconds, tokens_per_second)

    def answer_seconds(self, key: str) -> float | None:
        return self.answers.seconds.get(key)

    def tokens_per_second(self, key: str) -> float | None:
        return self.answers.rate.get(key)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def claim_wake(self, key: str, seconds: float) -> bool:
        return True  # the Annotator's own guard is the whole guard in one process

    def wake_over(self, key: str) -> None:
        pass

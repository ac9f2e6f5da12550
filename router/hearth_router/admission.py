"""Admission and the line: which model a name means, whether a request may wait for it (the
`max_waiters` limit, checked and joined in one step), and `acquire` — wait for a free slot on a
Ready replica, telling the caller its place in line. An `Admission` is one request's place with
its model, from admission until it gives its slot back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from hearth_api.model_deployment import (
    ModelDeployment,
    Phase,
    effective_concurrency,
    prior_tokens_per_second,
)
from hearth_router import progress, routing
from hearth_router.annotations import Annotator
from hearth_router.errors import RouterError, unavailable, unknown_model
from hearth_router.holding import Holding
from hearth_router.line import Line
from hearth_router.progress import Queued
from hearth_router.registry import Entry, Registry
from hearth_router.settings import RouterSettings
from hearth_router.slots import Ticket
from hearth_router.unreachable import Unreachable

Waiting = progress.Downloading | progress.Loading | Queued  # what a request is told while it waits


@dataclass
class Waiters:
    """Requests per model that wait for a load or a slot on this replica, exported as a gauge."""

    gauge: Any  # metrics.waiters, labelled by model
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, key: str) -> int:
        return self.counts.get(key, 0)

    def add(self, key: str, model: str, delta: int) -> None:
        self.counts[key] = self.count(key) + delta
        self.gauge.labels(model=model).set(self.count(key))


@dataclass
class Admission:
    """One request on its way to a slot: counted as a waiter from its admission until it holds
    a slot (or gives up), then holding the slot until closed. A context manager; a streamed
    answer's response closes it however the response ends."""

    admissions: Admissions
    entry: Entry
    ticket: Ticket
    began: float = field(default_factory=time.monotonic)
    max_tokens: int | None = None  # what the request asked for, for its queue estimate
    load_waited: float | None = None  # seconds it waited for a load; None: it found it warm
    waiting: bool = True
    patient: bool = False  # a stream, which sees the progress: it waits out a first download

    @property
    def endpoint(self) -> str:
        if self.ticket.endpoint is None:
            raise RuntimeError("the admission holds no slot yet: iterate wait() to the end first")
        return self.ticket.endpoint

    @property
    def model(self) -> str:
        return self.entry.md.spec.model

    def latest(self) -> ModelDeployment:
        """The model as the registry has it now (as admitted, if it was deleted since)."""
        return (self.admissions.registry.get(self.entry.key) or self.entry).md

    async def wait(self) -> AsyncIterator[Waiting]:
        """Download and loading updates while the model comes up, then queue places while every
        replica is busy; ends holding a slot."""
        held = False
        async for update in self.admissions.holding.hold(self.entry, self.patient):
            held = True
            yield update
        if held:
            self.load_waited = time.monotonic() - self.began
        async for place in self.admissions.acquire(self.entry, self.ticket, self.max_tokens):
            yield place
        self.stop_waiting()

    async def requeue(self, endpoint: str) -> None:
        """The engine never took the request: rest that endpoint, give the slot back and wait
        again, at the place in line it had earned."""
        self.admissions.unreachable.mark_down(endpoint)
        await self.admissions.line.requeue(self.ticket)
        if not self.waiting:
            self.waiting = True
            self.admissions.waiters.add(self.entry.key, self.model, +1)

    async def touch(self) -> None:
        """The model is in use: renew its last activity (at most every activity interval)."""
        await self.admissions.annotator.touch(self.entry.key, self.entry.md.spec.scaling.idle_timeout_seconds)

    def record_answer(self, seconds: float, tokens_per_second: float | None = None) -> None:
        """How long the engine took, for the queue estimates of those behind."""
        self.admissions.line.record_answer(self.entry.key, seconds, tokens_per_second)

    def stop_waiting(self) -> None:
        if self.waiting:
            self.waiting = False
            self.admissions.waiters.add(self.entry.key, self.model, -1)

    def close(self) -> None:
        """Leave the count and the line, or give the slot back. Idempotent."""
        self.stop_waiting()
        self.admissions.line.release(self.ticket)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def requested_tokens(body: dict[str, Any]) -> int | None:
    """The answer length a request caps, if it does (OpenAI's two spellings)."""
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass
class Admissions:
    settings: RouterSettings
    registry: Registry
    line: Line  # the queues, slots and answer times: this process's own, or shared by every replica
    holding: Holding
    annotator: Annotator
    unreachable: Unreachable
    waiters: Waiters

    def resolve(self, name: str) -> Entry:
        if not self.registry.ready.is_set():
            raise unavailable(
                "the router is starting: the list of models is not loaded yet", "not_ready", retry_after=2
            )
        if name in routing.AUTO_NAMES:
            models = [e.md for e in self.registry.entries.values()]
            if not models:  # nothing deployed: no model exists to pick (a 503 would say "later")
                raise unknown_model(name, [])
            chosen = routing.choose_auto(models, self.line.inflight)
            entry = self.registry.get(chosen.key) if chosen is not None else None
            if entry is None:
                raise unavailable("no model can serve `auto` right now", "no_model")
            return entry
        entry = self.registry.resolve(name)
        if entry is None:
            raise unknown_model(name, self.registry.names())
        return entry

    async def admit(
        self, entry: Entry, body: dict[str, Any] | None = None, patient: bool = False
    ) -> Admission:
        """Fail fast (a Failed model, one no node can hold), then check the waiter limit and
        take a place in line in one step — the local line's never suspends, the shared one's is
        one script the store runs whole — so a burst cannot slip past it: exactly `max_waiters`
        get in, across every replica, the rest 429. The caller closes the admission."""
        md = entry.md
        if md.status.phase is Phase.FAILED:
            raise unavailable(f"{md.spec.model} cannot run: {md.status.message}", "model_failed")
        if md.never_fits:
            raise unavailable(f"{md.spec.model} cannot be placed: {md.status.message}", "model_unschedulable")
        joined = await self.line.join(entry.key, self.settings.max_waiters)
        if not isinstance(joined, Ticket):
            raise RouterError(
                429,
                f"{joined} requests are already waiting for {md.spec.model}; try again later",
                "rate_limit_error",
                "too_many_waiters",
                retry_after=md.warmup_estimate,
            )
        self.waiters.add(entry.key, md.spec.model, +1)
        return Admission(self, entry, joined, max_tokens=requested_tokens(body or {}), patient=patient)

    async def acquire(
        self, entry: Entry, ticket: Ticket, max_tokens: int | None = None
    ) -> AsyncIterator[Queued]:
        """Yield the ticket's place while every replica is at `concurrency` — about once a
        second; return once it holds a slot
        (ticket.endpoint). A slot freed goes to the next in line at once (the release wakes
        it). Re-holds when the model stops being Warm meanwhile."""
        key, interval = entry.key, self.settings.loading_interval
        told: Queued | None = None
        told_at = 0.0
        began = time.monotonic()
        while True:
            md = self.holding.current(entry).md
            endpoints = self.unreachable.usable(md)
            if md.status.phase is not Phase.WARM or not endpoints:
                async for _ in self.holding.hold(self.holding.current(entry)):
                    pass
                continue
            concurrency = effective_concurrency(md.spec)
            if await self.line.grant(ticket, endpoints, concurrency):
                return
            # Once a second, with the place as it is then: in a draining queue every grant moves
            # everyone up, and an event per move would be many a second per waiting client.
            now = time.monotonic()
            if told is None or now - told_at >= interval:
                answer = progress.answer_seconds(
                    self.line.answer_seconds(key),
                    max_tokens,
                    self.line.tokens_per_second(key),
                    prior_tokens_per_second(md.spec),
                )
                told = progress.queued(
                    md.spec.model,
                    await self.line.position(ticket),
                    answer,
                    concurrency * len(endpoints),
                    now,
                    now - began,
                    told,
                    this_replica_only=self.line.degraded is not None,
                )
                told_at = now
                yield told
                await self.annotator.touch(key, md.spec.scaling.idle_timeout_seconds)
            await self.line.wait(ticket, max(0.05, told_at + interval - time.monotonic()))

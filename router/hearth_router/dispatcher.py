"""The cold-start path, behind two narrow steps (KubeAI's shape): `hold` — make sure the model
is coming and wait for it, telling the caller how long — and `acquire` — wait for a free slot on
a Ready replica, telling the caller its place in line. Both request paths (streamed and whole
answers) walk them through one `Admission`; only what they do with the progress differs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from hearth_api.model_deployment import (
    ConditionType,
    ModelDeployment,
    Phase,
    effective_concurrency,
    prior_tokens_per_second,
)
from hearth_router import chunks, progress, routing
from hearth_router.annotations import Annotator
from hearth_router.errors import EngineUnreachable, RouterError, unavailable, unknown_model
from hearth_router.line import Line, LocalLine
from hearth_router.metrics import RouterMetrics
from hearth_router.progress import Queued
from hearth_router.registry import Entry, Registry
from hearth_router.settings import RouterSettings
from hearth_router.slots import Ticket
from hearth_router.upstream import Upstream

ATTEMPTS = 3  # times a request meets a refused connection before it gives up


class Cancellable(Protocol):
    def cancel(self) -> Any: ...


@dataclass
class Waiters:
    """Requests per model that wait for a load or a slot: past a limit new ones are turned
    away, and the count is exported as a gauge."""

    gauge: Any = None  # metrics.waiters, labelled by model
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

    dispatcher: Dispatcher
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

    async def wait(self) -> AsyncIterator[progress.Downloading | progress.Loading | Queued]:
        """Download and loading updates while the model comes up, then queue places while every
        replica is busy; ends holding a slot."""
        held = False
        async for update in self.dispatcher.hold(self.entry, self.patient):
            held = True
            yield update
        if held:
            self.load_waited = time.monotonic() - self.began
        async for place in self.dispatcher.acquire(self.entry, self.ticket, self.max_tokens):
            yield place
        self.stop_waiting()

    async def engine_refused(self, exc: EngineUnreachable, attempt: int) -> None:
        """The engine never took the request (refused or dropped the connection before its
        answer began): rest that endpoint, give the slot back and wait again, at the place in
        line it had earned. Raises `exc` once this was the last of ATTEMPTS."""
        if attempt >= ATTEMPTS:
            raise exc
        dispatcher = self.dispatcher
        dispatcher.mark_down(exc.endpoint)
        await dispatcher.line.requeue(self.ticket)
        if not self.waiting:
            self.waiting = True
            dispatcher.waiters.add(self.entry.key, self.entry.md.spec.model, +1)

    def stop_waiting(self) -> None:
        if self.waiting:
            self.waiting = False
            self.dispatcher.waiters.add(self.entry.key, self.entry.md.spec.model, -1)

    def close(self) -> None:
        """Leave the count and the line, or give the slot back. Idempotent."""
        self.stop_waiting()
        self.dispatcher.line.release(self.ticket)

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def requested_tokens(body: dict[str, Any]) -> int | None:
    """The answer length a request caps, if it does (OpenAI's two spellings)."""
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


@dataclass
class Dispatcher:
    settings: RouterSettings
    registry: Registry
    annotator: Annotator
    upstream: Upstream
    metrics: RouterMetrics
    # The queues, slots and answer times: this process's own, or shared by every replica.
    line: Line = field(default_factory=LocalLine)
    waiters: Waiters = field(default_factory=Waiters)  # this replica's, for the gauge
    active: dict[str, Cancellable] = field(default_factory=dict)  # request id → what cancels it
    background: set[asyncio.Task[None]] = field(default_factory=set)  # streams finishing their cleanup
    down: dict[str, float] = field(default_factory=dict)  # endpoint → until when it is not tried
    drain_started: float | None = None  # monotonic time of the SIGTERM that began a drain (drain.py)

    @property
    def draining(self) -> bool:
        return self.drain_started is not None

    def mark_down(self, endpoint: str) -> None:
        """An endpoint that refused a connection is not tried for a few seconds: its pod is
        restarting, and the operator will soon say so (or list it again)."""
        now = time.monotonic()
        self.down = {e: until for e, until in self.down.items() if until > now}  # the rested drop out
        self.down[endpoint] = now + self.settings.unreachable_retry_seconds

    def usable(self, md: ModelDeployment) -> list[str]:
        """The model's Ready endpoints, less those that just refused a connection."""
        now = time.monotonic()
        return [e for e in md.status.endpoints if self.down.get(e, 0.0) <= now]

    def __post_init__(self) -> None:
        self.waiters.gauge = self.metrics.waiters

    # --- which model, and may it wait --------------------------------------------------------

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

    # --- hold: wake and wait for Warm --------------------------------------------------------

    def _current(self, entry: Entry) -> Entry:
        current = self.registry.get(entry.key)
        if current is None:
            raise unavailable(f"{entry.md.spec.model} was deleted while the request waited", "model_deleted")
        return current

    def _download_deadline(self, md: ModelDeployment, deadline: float, patient: bool) -> float:
        """While the weights download, the hold timeout counts from the download's end for a
        stream (it shows the progress; the operator fails a download that stalls). A whole
        answer waits only as long as the hold allows: a download that will not end in time is
        a 503 now, saying so, with Retry-After from the download's ETA — not a bare 504 later."""
        hold = self.settings.hold_timeout(md.warmup_estimate)
        now = time.monotonic()
        if patient:
            return max(deadline, now + hold)
        got = md.status.download
        eta = got.eta_seconds if got is not None else None
        if (eta is not None and now + eta + md.warmup_estimate > deadline) or now > deadline:
            update = progress.downloading(md)
            after = (eta if eta is not None else hold) + md.warmup_estimate
            raise RouterError(
                503,
                f"{update.message}; it will not be ready within this request's wait "
                f"({deadline - now:.0f} s left): try again in {progress.duration_text(after)[1:]}, "
                "or stream the request to watch the download",
                "service_unavailable_error",
                "model_downloading",
                retry_after=after,
            )
        return deadline

    async def hold(
        self, entry: Entry, patient: bool = False
    ) -> AsyncIterator[progress.Downloading | progress.Loading]:
        """Yield a Downloading or Loading update about once a second and on every status change
        until the model is Warm; raise RouterError when it fails, vanishes or takes past the
        hold timeout (see _download_deadline for a first download)."""
        key, model = entry.key, entry.md.spec.model
        began = time.monotonic()
        deadline = began + self.settings.hold_timeout(entry.md.warmup_estimate)
        previous: progress.Loading | None = None  # the countdown as last computed
        last: tuple[str, float] | None = None  # the stage last yielded, and when
        while True:
            current = self._current(entry)
            md = current.md
            if md.status.phase is Phase.DOWNLOADING:
                deadline = self._download_deadline(md, deadline, patient)
            self.annotator.observe(key, md.status.phase)
            if md.status.phase is Phase.WARM and self.usable(md):
                if last is not None:
                    self.metrics.cold_wait.labels(model=model).observe(time.monotonic() - began)
                return
            if md.status.phase is Phase.FAILED:
                verb = "download" if md.status.reason(ConditionType.DEGRADED) == "DownloadFailed" else "load"
                raise unavailable(f"{model} failed to {verb}: {md.status.message}", "model_failed")
            if md.never_fits:
                raise unavailable(f"{model} cannot be placed: {md.status.message}", "model_unschedulable")
            if time.monotonic() > deadline:
                raise RouterError(
                    504,
                    f"{model} did not finish loading within "
                    f"{deadline - began:.0f} s ({md.status.message or md.status.phase})",
                    code="load_timeout",
                )
            await self.annotator.ensure_awake(key, md.status.phase)
            await self.annotator.touch(key, md.spec.scaling.idle_timeout_seconds)
            update: progress.Downloading | progress.Loading
            if progress.first_download(md):
                update = progress.downloading(md, current.download_age)
            else:
                update = previous = progress.loading(md, datetime.now(UTC), previous)
            now = time.monotonic()
            # Once a second; at once only when the stage changes (a new figure alone waits its turn).
            if last is None or last[0] != update.stage or now - last[1] >= self.settings.loading_interval:
                last = (update.stage, now)
                yield update
            await self.registry.wait_change(max(0.05, last[1] + self.settings.loading_interval - now), key)

    # --- acquire: a slot on a Ready replica --------------------------------------------------

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
            md = self._current(entry).md
            endpoints = self.usable(md)
            if md.status.phase is not Phase.WARM or not endpoints:
                async for _ in self.hold(self._current(entry)):
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

    def record_generation(self, key: str, seconds: float, tokens_per_second: float | None = None) -> None:
        self.line.record_answer(key, seconds, tokens_per_second)

    # --- a whole answer (stream: false, embeddings) ------------------------------------------

    async def complete(
        self, entry: Entry, body: dict[str, Any], path: str, ident: chunks.StreamIdentity
    ) -> dict[str, Any]:
        """Hold until Warm (the same wake), take a slot, fetch the engine's answer, return it as
        plain OpenAI JSON with the model named as the client asked. Cancellable by id."""
        current = asyncio.current_task()
        if current is None:
            raise RuntimeError("complete() runs inside a task")
        task: asyncio.Task[Any] = current
        self.active[ident.id] = task
        model = entry.md.spec.model
        try:
            with await self.admit(entry, body) as admission:
                for attempt in range(1, ATTEMPTS + 1):
                    async for _ in admission.wait():
                        pass
                    started = time.monotonic()
                    try:
                        answer = await self.upstream.fetch(
                            admission.endpoint, path, {**body, "model": model, "stream": False}
                        )
                        break
                    except EngineUnreachable as exc:
                        await admission.engine_refused(exc, attempt)
                self.metrics.upstream.labels(model=model).observe(time.monotonic() - started)
                if path != "/v1/embeddings":
                    self.record_generation(entry.key, time.monotonic() - started)
                    answer["id"] = ident.id
                answer["model"] = ident.model
                self.metrics.requests.labels(model=model, outcome="ok").inc()
                self.metrics.ttft.labels(model=model).observe(time.monotonic() - admission.began)
                return answer
        except RouterError as exc:
            self.metrics.requests.labels(model=model, outcome=exc.code or "error").inc()
            raise
        except asyncio.CancelledError:
            if self.active.get(ident.id) is task and task.cancelling():
                task.uncancel()
                raise RouterError(409, "Cancelled by the client", "cancelled", "cancelled") from None
            raise
        finally:
            self.active.pop(ident.id, None)

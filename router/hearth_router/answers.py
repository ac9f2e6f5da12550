"""Running a request against an engine, once it is admitted: one retry loop for streamed and
whole answers (`attempts`), and the whole answer itself (`WholeAnswers`: stream false,
embeddings). A request the engine never took — the connection refused or dropped before the
answer began — waits again at its place in line, up to ATTEMPTS times."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from hearth_router import chunks
from hearth_router.admission import Admission, Admissions, Waiting
from hearth_router.errors import EngineUnreachable, RouterError
from hearth_router.inflight import InFlight
from hearth_router.metrics import RouterMetrics
from hearth_router.registry import Entry
from hearth_router.upstream import Upstream

ATTEMPTS = 3  # times a request meets a refused connection before it gives up
T = TypeVar("T")


@dataclass(frozen=True)
class Granted:
    """The request holds a slot on `endpoint`; what the engine sends comes next."""

    endpoint: str


@dataclass(frozen=True)
class Refused:
    """The engine never took the request; it waits again (the updates follow)."""

    error: EngineUnreachable


async def attempts(
    admission: Admission, call: Callable[[str], AsyncIterator[T]]
) -> AsyncIterator[Waiting | Granted | Refused | T]:
    """Wait for a slot, then run `call(endpoint)`, yielding the waiting updates, a `Granted`,
    and what the call yields; on a refusal a `Refused`, and again from the wait. Raises the
    refusal once it was the last of ATTEMPTS."""
    for attempt in range(1, ATTEMPTS + 1):
        async for update in admission.wait():
            yield update
        yield Granted(admission.endpoint)
        try:
            async for item in call(admission.endpoint):
                yield item
            return
        except EngineUnreachable as exc:
            if attempt >= ATTEMPTS:
                raise
            await admission.requeue(exc.endpoint)
            yield Refused(exc)


@dataclass
class WholeAnswers:
    admissions: Admissions
    upstream: Upstream
    metrics: RouterMetrics
    inflight: InFlight

    async def complete(
        self, entry: Entry, body: dict[str, Any], path: str, ident: chunks.StreamIdentity
    ) -> dict[str, Any]:
        """Hold until Warm (the same wake), take a slot, fetch the engine's answer, return it as
        plain OpenAI JSON with the model named as the client asked. Cancellable by id."""
        current = asyncio.current_task()
        if current is None:
            raise RuntimeError("complete() runs inside a task")
        task: asyncio.Task[Any] = current
        self.inflight.active[ident.id] = task
        model = entry.md.spec.model
        try:
            with await self.admissions.admit(entry, body) as admission:
                return await self._answer(admission, body, path, ident)
        except RouterError as exc:
            self.metrics.requests.labels(model=model, outcome=exc.code or "error").inc()
            raise
        except asyncio.CancelledError:
            if self.inflight.active.get(ident.id) is task and task.cancelling():
                task.uncancel()
                raise RouterError(409, "Cancelled by the client", "cancelled", "cancelled") from None
            raise
        finally:
            self.inflight.active.pop(ident.id, None)

    async def _answer(
        self, admission: Admission, body: dict[str, Any], path: str, ident: chunks.StreamIdentity
    ) -> dict[str, Any]:
        model = admission.model
        started = time.monotonic()

        async def fetch(endpoint: str) -> AsyncIterator[dict[str, Any]]:
            nonlocal started
            started = time.monotonic()
            yield await self.upstream.fetch(endpoint, path, {**body, "model": model, "stream": False})

        answer: dict[str, Any] = {}
        async for item in attempts(admission, fetch):
            if isinstance(item, dict):
                answer = item
        took = time.monotonic() - started
        self.metrics.upstream.labels(model=model).observe(took)
        if path != "/v1/embeddings":
            admission.record_answer(took)
            answer["id"] = ident.id
        answer["model"] = ident.model
        self.metrics.requests.labels(model=model, outcome="ok").inc()
        self.metrics.ttft.labels(model=model).observe(time.monotonic() - admission.began)
        return answer

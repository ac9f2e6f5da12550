"""One streaming request, start to end: routing → loading* → queued* → generating → the engine's
chunks → done → [DONE]; any failure after the first byte becomes an error event and a clean
close. Status events are written whole and flushed one by one; the waiting is finished before
the engine's answer takes over, so nothing interleaves (llama-swap's lesson)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from hearth_api.model_deployment import gpu_short_name
from hearth_router import chunks, progress
from hearth_router.admission import Admission, Waiting
from hearth_router.answers import Granted, Refused, attempts
from hearth_router.errors import RouterError
from hearth_router.inflight import InFlight
from hearth_router.metrics import RouterMetrics
from hearth_router.progress import Queued
from hearth_router.settings import RouterSettings
from hearth_router.upstream import Upstream

log = logging.getLogger("hearth.router.stream")


def new_request_id(chat: bool) -> str:
    return f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"


def waiting_event(update: Waiting) -> tuple[str, dict[str, Any]]:
    """A waiting update as a status event: its name and the fields it carries (docs/stream.md)."""
    if isinstance(update, progress.Downloading):
        return "downloading", {
            "progress": update.progress,
            "bytes": update.bytes,
            "total_bytes": update.total_bytes,
            "estimated_time": update.estimated_time,
        }
    if isinstance(update, Queued):
        return "queued", {"queue_position": update.position, "estimated_time": update.estimated_time}
    return "loading", {"estimated_time": update.estimated_time, "progress": update.progress}


@dataclass
class Streams:
    """What every streamed answer of this replica shares."""

    upstream: Upstream
    metrics: RouterMetrics
    inflight: InFlight
    settings: RouterSettings


@dataclass
class StreamJob:
    streams: Streams
    admission: Admission  # taken by the route, before the response began; closed by it
    body: dict[str, Any]
    ident: chunks.StreamIdentity
    path: str  # the engine's path: /v1/chat/completions or /v1/completions
    user_cancelled: bool = False
    restarting: bool = False  # the drain deadline ended it (drain.py)
    stage: str = "routing"  # the last status sent: where a hang-up found the request
    _placed: tuple[str | None, str | None] = (None, None)  # the GPU class and node it runs on
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def model(self) -> str:
        return self.admission.model

    def _status(self, status: str, message: str, **extra: Any) -> bytes:
        gpu = gpu_short_name(extra.pop("gpu_class", None))
        self.stage = status
        return chunks.frame(
            chunks.status_chunk(self.ident, status, message, timestamp=time.time(), backend=gpu, **extra)
        )

    async def _events(self) -> AsyncIterator[bytes]:
        admission = self.admission
        try:
            async for item in attempts(admission, self._generate):
                if isinstance(item, bytes):
                    yield item
                elif isinstance(item, Granted):
                    md = admission.latest()
                    self._placed = (md.status.gpu_class, md.status.node)
                    yield self._status(
                        "generating", "Generating…", gpu_class=md.status.gpu_class, node=md.status.node
                    )
                elif isinstance(item, Refused):
                    # Refused before a byte was sent: the request never reached the engine, so it
                    # waits again (at its place in line) for the engine to come back, and says so.
                    log.info("stream %s: %s; waiting for it again", self.ident.id, item.error.message)
                    yield self._status(
                        "loading", f"The {self.model} engine went away; waiting for it to come back…"
                    )
                else:
                    yield self._waiting(item)
        finally:
            admission.close()  # the slot goes back as soon as the answer is over

    def _waiting(self, update: Waiting) -> bytes:
        status, extra = waiting_event(update)
        if status == "loading":
            md = self.admission.latest()
            extra |= {"gpu_class": md.status.gpu_class, "node": md.status.node}
        return self._status(status, update.message, **extra)

    async def _generate(self, endpoint: str) -> AsyncIterator[bytes]:
        admission, metrics = self.admission, self.streams.metrics
        gpu_class, node = self._placed
        began = admission.began
        # Usage asked of the engine whatever the client asked: `done` carries the engine's own
        # token counts (the client still gets a usage chunk only if it asked for one).
        options = self.body.get("stream_options")
        asked = options if isinstance(options, dict) else {}
        body = {
            **self.body,
            "model": self.model,
            "stream": True,
            "stream_options": {**asked, "include_usage": True},
        }
        text: list[str] = []
        finish = "stop"
        usage: dict[str, Any] | None = None
        first_token: float | None = None
        started = time.monotonic()
        async for chunk in self.streams.upstream.stream(endpoint, self.path, body):
            await admission.touch()
            if chunk.get("usage"):
                usage = chunk["usage"]
            choices = chunk.get("choices") or []
            if not choices:
                continue  # the engine's usage-only chunk: `done` carries usage
            piece = chunks.delta_text(chunk)
            reason = choices[0].get("finish_reason")
            if reason:
                finish = reason
            if piece and first_token is None:
                first_token = time.monotonic()
                metrics.ttft.labels(model=self.model).observe(first_token - began)
                metrics.upstream.labels(model=self.model).observe(first_token - started)
            if piece:
                text.append(piece)
            if piece or (choices[0].get("delta") or {}).get("role"):
                # Text and the opening role chunk pass through; `done` carries the finish reason.
                out = chunks.rewrite_upstream(chunk, self.ident)
                out["choices"] = [{**choices[0], "finish_reason": None}]
                yield chunks.frame(out)
        elapsed = time.monotonic() - started
        completion_tokens = (usage or {}).get("completion_tokens") or len(text)
        rate = completion_tokens / (time.monotonic() - (first_token or started)) if text else None
        admission.record_answer(elapsed, rate)
        summary = progress.summary(gpu_class, admission.load_waited, rate)
        usage = usage or {
            "prompt_tokens": 0,
            "completion_tokens": completion_tokens,
            "total_tokens": completion_tokens,
        }
        metrics.requests.labels(model=self.model, outcome="ok").inc()
        yield chunks.frame(
            chunks.status_chunk(
                self.ident,
                "done",
                summary,
                timestamp=time.time(),
                done=True,
                finish_reason=finish,
                hidden=self.streams.settings.hide_status_summary,
                content="".join(text),
                backend=gpu_short_name(gpu_class),
                node=node,
                usage=usage,
            )
        )
        options = self.body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            # Asked for explicitly: OpenAI's usage chunk, last before [DONE], with no choices.
            yield chunks.frame({**chunks.rewrite_upstream({}, self.ident), "choices": [], "usage": usage})

    async def _produce(self, queue: asyncio.Queue[bytes | None]) -> None:
        try:
            async for frame in self._events():
                queue.put_nowait(frame)
        except RouterError as exc:
            self.streams.metrics.stream_errors.labels(model=self.model, code=exc.code or "error").inc()
            self.streams.metrics.requests.labels(model=self.model, outcome=exc.code or "error").inc()
            queue.put_nowait(
                chunks.frame(
                    chunks.error_chunk(
                        self.ident, exc.message, timestamp=time.time(), type_=exc.type, code=exc.code
                    )
                )
            )
        except Exception:  # a bug must still end the stream with a clear error, and be logged
            log.exception("stream %s failed", self.ident.id)
            self.streams.metrics.stream_errors.labels(model=self.model, code="internal_error").inc()
            queue.put_nowait(
                chunks.frame(
                    chunks.error_chunk(
                        self.ident,
                        "the router failed while serving this request; see its log",
                        timestamp=time.time(),
                        code="internal_error",
                    )
                )
            )
        finally:
            queue.put_nowait(None)

    def cancel(self) -> None:
        self.user_cancelled = True
        if self._task is not None:
            self._task.cancel()

    def end_for_restart(self) -> None:
        """The drain deadline passed (drain.py): end with an error event that says why."""
        self.restarting = True
        if self._task is not None:
            self._task.cancel()

    def opening(self) -> bytes:
        """The first event, `routing`: sent with the response head, before anything that can
        wait (with a thousand requests arriving at once, each task switch before it would put
        this client behind all the others' work)."""
        return self._status("routing", "Selecting backend…")

    async def sse(self) -> AsyncGenerator[bytes]:
        """The response body after `opening()`: events as they come, a keep-alive comment after each quiet
        `keepalive_interval`, an error event when cancelled, always [DONE] at the end. If the
        client goes away, the generator is closed and the engine request with it."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._produce(queue), name=f"stream {self.ident.id}")
        self.streams.inflight.active[self.ident.id] = self
        ended = False
        try:
            while not ended:
                if queue.empty():
                    try:  # (asyncio.timeout, not wait_for: no task per wait on Python 3.11)
                        async with asyncio.timeout(self.streams.settings.keepalive_interval):
                            first = await queue.get()
                    except TimeoutError:
                        yield chunks.KEEPALIVE_FRAME
                        continue
                else:
                    first = queue.get_nowait()
                # Whatever else is ready goes out in the same write: fewer, larger sends.
                batch = [first]
                while batch[-1] is not None and not queue.empty():
                    batch.append(queue.get_nowait())
                ended = batch[-1] is None
                frames = b"".join(f for f in batch if f is not None)
                if frames:
                    yield frames
            if self.restarting:
                self.streams.metrics.requests.labels(model=self.model, outcome="router_restarting").inc()
                yield chunks.frame(
                    chunks.error_chunk(
                        self.ident,
                        "Hearth's router is restarting (an upgrade or a node drain) and could not finish "
                        "this answer in time; send the request again",
                        timestamp=time.time(),
                        type_="unavailable",
                        code="router_restarting",
                    )
                )
            elif self.user_cancelled:
                self.streams.metrics.requests.labels(model=self.model, outcome="cancelled").inc()
                yield chunks.frame(
                    chunks.error_chunk(
                        self.ident,
                        "Cancelled by the client",
                        timestamp=time.time(),
                        type_="cancelled",
                        code="cancelled",
                    )
                )
            yield chunks.DONE_FRAME
        finally:
            self.streams.inflight.active.pop(self.ident.id, None)
            if not ended:  # the client hung up (a closed tab, a dashboard's Cancel)
                self.streams.metrics.requests.labels(model=self.model, outcome="client_gone").inc()
                log.info(
                    "stream %s for %s: the client went away while %s", self.ident.id, self.model, self.stage
                )
            # Cancel, and let the producer close the engine request on its own: awaiting it here
            # (under Starlette's cancelled scope) would cancel it again mid-cleanup and leave the
            # engine connection open.
            self._task.cancel()
            self.streams.inflight.finish_in_background(self._task)

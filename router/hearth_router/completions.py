"""POST /v1/chat/completions and /v1/completions as bare ASGI endpoints.

Why not FastAPI routes like the rest: under a burst every microsecond before a stream's first
event is paid by every request behind it. A FastAPI route adds its request wrapper and
dependency solving, and Starlette's StreamingResponse an anyio task group per response, whose
tasks resume through the whole middleware stack on every event. Here the request is checked,
parsed and admitted, the head and the `routing` event are written in the request's own step,
and the events that follow are sent by one task of their own. What a client sees is the same:
the same errors (OpenAI-shaped, from the same functions), the same events, the same headers;
CORS and the size limits still wrap these routes; the OpenAPI document still lists them
(`openapi_paths`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from hearth_router import chunks
from hearth_router.admission import Admissions
from hearth_router.answers import WholeAnswers
from hearth_router.errors import RouterError
from hearth_router.keys import KeyRing
from hearth_router.limits import Receive, Scope, Send, error_response
from hearth_router.requests import ChatRequest, CompletionRequest, bearer_token, openapi_body, parse
from hearth_router.streaming import StreamJob, Streams, new_request_id

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_STREAM_HEAD = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    *((k.lower().encode(), v.encode()) for k, v in STREAM_HEADERS.items()),
]
PATHS: dict[str, type[ChatRequest | CompletionRequest]] = {
    "/v1/chat/completions": ChatRequest,
    "/v1/completions": CompletionRequest,
}


class Completions:
    """One of the two completion routes (`path`, its request model from PATHS): a streamed
    answer or a whole one, the API key checked first."""

    def __init__(
        self, admissions: Admissions, answers: WholeAnswers, streams: Streams, keyring: KeyRing, path: str
    ) -> None:
        self.admissions, self.answers, self.streams = admissions, answers, streams
        self.keyring, self.path = keyring, path
        self.kind = PATHS[path]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            job = await self._handle(Request(scope, receive))
        except RouterError as exc:
            await error_response(exc)(scope, receive, send)
            return
        if isinstance(job, StreamJob):
            await stream(job, receive, send)
        else:
            await job(scope, receive, send)

    async def _handle(self, request: Request) -> StreamJob | JSONResponse:
        """A whole answer, done; or a stream, admitted and ready to respond."""
        self.keyring.check(bearer_token(request))
        parsed, raw = await parse(request, self.kind)
        entry = self.admissions.resolve(parsed.model)
        chat = self.kind is ChatRequest
        ident = chunks.StreamIdentity(new_request_id(chat), int(time.time()), parsed.model, chat)
        if not parsed.stream:
            return JSONResponse(await self.answers.complete(entry, raw, self.path, ident))
        # Admitted here, before the response begins: past the waiter limit it is a 429, not an
        # error event in a stream that was already accepted.
        admission = await self.admissions.admit(entry, raw, patient=True)
        return StreamJob(self.streams, admission, raw, ident, self.path)


async def stream(job: StreamJob, receive: Receive, send: Send) -> None:
    """The response of an admitted stream: head and `routing` at once, then `job.sse()` sent by
    a task of its own while this one listens for the client going away. The admission is closed
    however the response ends — also when the client hangs up before the body began."""
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _STREAM_HEAD})
        await send({"type": "http.response.body", "body": job.opening(), "more_body": True})
        sending = asyncio.create_task(_send_events(job, send), name=f"send {job.ident.id}")
        listening = asyncio.create_task(_client_gone(receive), name=f"listen {job.ident.id}")
        try:
            await asyncio.wait((sending, listening), return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
            if not sending.done():  # the client went away (or the server is stopping)
                sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending  # its failure, if any, is the response's
    finally:
        job.admission.close()


async def _send_events(job: StreamJob, send: Send) -> None:
    body = job.sse()
    try:
        async for frames in body:
            await send({"type": "http.response.body", "body": frames, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await body.aclose()  # on a cancel too: the job's cleanup runs now, not at collection


async def _client_gone(receive: Receive) -> None:
    """Return when the connection is gone. (Servers also say `http.disconnect` once the
    response is complete; by then the sender has ended first.)"""
    while (await receive())["type"] != "http.disconnect":
        pass


def openapi_paths() -> dict[str, Any]:
    """The two routes as OpenAPI path items, as FastAPI would have documented them."""
    ok = {"description": "Successful Response", "content": {"application/json": {"schema": {}}}}
    out: dict[str, Any] = {}
    for path, kind in PATHS.items():
        name = "chat_completions" if kind is ChatRequest else "completions"
        operation = {
            "summary": name.replace("_", " ").title(),
            "operationId": f"{name}{path.replace('/', '_')}_post",
            **openapi_body(kind),
            "responses": {"200": ok},
        }
        out[path] = {"post": operation}
    return out

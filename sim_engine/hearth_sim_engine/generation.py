"""One answer of the simulated engine: its tokens paced at the configured speed, as a stream of
OpenAI chunks or as one whole answer, and errors in the shape of the engine it plays."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse

from hearth_sim_engine import text
from hearth_sim_engine.engine import EngineState, Failure, Personality

log = logging.getLogger("hearth.sim.engine")

_VLLM_TYPES = {400: "BadRequestError", 404: "NotFoundError", 503: "ServiceUnavailableError"}


def error(
    personality: Personality, status: int, message: str, type_: str, param: str | None = None
) -> JSONResponse:
    """An error in the engine's own shape: llama.cpp's and OpenAI's differ, vLLM's is its own."""
    body: dict[str, Any]
    match personality:
        case Personality.LLAMACPP:
            body = {"error": {"code": status, "message": message, "type": type_}}
        case Personality.VLLM:
            kind = _VLLM_TYPES.get(status, "InternalServerError")
            body = {"object": "error", "message": message, "type": kind, "param": param, "code": status}
        case _:
            body = {"error": {"message": message, "type": type_, "code": None, "param": param}}
    return JSONResponse(body, status_code=status)


def _sse(obj: dict[str, Any] | str) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


class Generation:
    """One request's answer: its tokens, timing and chunk shapes."""

    def __init__(self, state: EngineState, body: dict[str, Any], prompt: str, chat: bool) -> None:
        self.state = state
        self.chat = chat
        self.model = str(body.get("model") or state.settings.model)
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        self.tokens = text.reply_tokens(prompt, max_tokens if isinstance(max_tokens, int) else None)
        cut = isinstance(max_tokens, int) and max_tokens < text.REPLY_TOKENS
        self.finish_reason = "length" if cut else "stop"
        self.usage = {
            "prompt_tokens": text.count_tokens(prompt),
            "completion_tokens": len(self.tokens),
            "total_tokens": text.count_tokens(prompt) + len(self.tokens),
        }
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-sim-{uuid.uuid4().hex[:16]}"
        self.created = int(time.time())
        options = body.get("stream_options") or {}
        self.include_usage = bool(isinstance(options, dict) and options.get("include_usage"))

    async def paced(self) -> AsyncIterator[tuple[int, str]]:
        """Yield (index, token) at the configured rate, against absolute deadlines so the rate
        holds however long each write takes."""
        interval = self.state.settings.token_interval
        start = time.monotonic()
        failure = self.state.settings.failure
        fail_at = self.state.settings.crash_after_tokens
        if (
            failure in (Failure.CRASH_AFTER_TOKENS, Failure.STALL_AFTER_TOKENS)
            and not self.state.settings.failure_due()
        ):
            failure = Failure.NONE
        for i, token in enumerate(self.tokens):
            if failure is Failure.CRASH_AFTER_TOKENS and i >= fail_at:
                log.error("engine crashed after %d tokens (simulated)", i)
                self.state.exit(1)
            if failure is Failure.STALL_AFTER_TOKENS and i >= fail_at:
                log.error("engine stalled after %d tokens (simulated)", i)
                await asyncio.Event().wait()
            delay = start + (i + 1) * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            yield i, token

    def chunk(self, delta_or_text: str | None, finish: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any]
        if self.chat:
            delta: dict[str, Any] = {} if delta_or_text is None else {"content": delta_or_text}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            obj = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": delta_or_text or "", "logprobs": None, "finish_reason": finish}
            obj = "text_completion"
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }

    async def stream(self) -> AsyncIterator[bytes]:
        self.state.active_streams += 1
        self.state.peak_streams = max(self.state.peak_streams, self.state.active_streams)
        try:
            async for frame in self._frames():
                yield frame
        finally:  # runs when the client goes away too: the count shows it
            self.state.active_streams -= 1
            self.state.streams_closed += 1

    async def _frames(self) -> AsyncIterator[bytes]:
        if self.chat:
            first = self.chunk(None)
            first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
            yield _sse(first)
        async for _, token in self.paced():
            yield _sse(self.chunk(token))
        yield _sse(self.chunk(None if self.chat else "", self.finish_reason))
        if self.include_usage:
            yield _sse({**self.chunk(None), "choices": [], "usage": self.usage})
        yield _sse("[DONE]")

    async def whole(self) -> dict[str, Any]:
        content = "".join([token async for _, token in self.paced()])
        choice: dict[str, Any]
        if self.chat:
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": self.finish_reason,
            }
        else:
            choice = {"index": 0, "text": content, "logprobs": None, "finish_reason": self.finish_reason}
        return {
            "id": self.id,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage,
        }

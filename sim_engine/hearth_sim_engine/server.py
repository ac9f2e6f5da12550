"""The simulated model engine: an OpenAI-compatible server that loads slowly, then streams.

It stands in for vLLM / llama.cpp / Ollama in tests, in the demo and in the chart on clusters
without a GPU. Loading takes `load_seconds` (± jitter); tokens stream at `tokens_per_second`;
`time_scale` multiplies every delay (0.1 runs ten times faster). Failure modes make the engine
misbehave the way real ones do.

A personality makes it behave, while it loads and when it refuses, like one real engine:

- `sim` (Hearth's own): `/health` 503 `{"status":"loading"}` until loaded, then 200.
- `llamacpp` (llama.cpp's `llama-server`): listens at once; every endpoint answers 503
  `{"error":{"message":"Loading model","type":"unavailable_error","code":503}}` until the
  weights are in; then `/health` 200 `{"status":"ok"}`; it serves whatever `model` is asked.
- `vllm` (vLLM's OpenAI server): nothing listens until the engine is up (connections are
  refused during the load), then `/health` 200 with an empty body; a `model` that is not one of
  its `--served-model-name`s is a 404 `NotFoundError`; errors are `{"object":"error",...}`.
- `ollama`: the homelab's simulated Ollama (`hearth_sim.ollama`: listens at once, loads on
  the first request, unloads after its keep-alive) builds on this engine with it; this module
  does not serve it alone.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from hearth_sim_engine import text

log = logging.getLogger("hearth.sim.engine")


class Failure(enum.StrEnum):
    NONE = "none"
    NEVER_READY = "never-ready"  # health stays 503 forever
    FAIL_LOAD = "fail-load"  # the process exits half way through loading
    CRASH_AFTER_TOKENS = "crash-after-tokens"  # the process exits mid-stream
    STALL_AFTER_TOKENS = "stall-after-tokens"  # the stream stops, the connection stays open


class Personality(enum.StrEnum):
    SIM = "sim"
    LLAMACPP = "llamacpp"
    VLLM = "vllm"
    OLLAMA = "ollama"


class EngineSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    model: str = "sim"
    personality: Personality = Personality.SIM
    served_names: tuple[str, ...] = Field(
        default=(), description="vllm: the names it answers to (--served-model-name); default: model"
    )
    load_seconds: float = Field(default=5.0, ge=0)
    load_jitter: float = Field(default=0.0, ge=0, le=1, description="± fraction of load time")
    tokens_per_second: float = Field(default=40.0, gt=0)
    time_scale: float = Field(default=1.0, gt=0, description="multiplies every delay")
    failure: Failure = Failure.NONE
    crash_after_tokens: int = Field(default=3, ge=0)
    fail_once_marker: Path | None = Field(
        default=None,
        description="with a mid-stream failure: fail only while this file is absent, and create it "
        "(a fault the restart clears, as most real crashes are)",
    )
    seed: int | None = None
    weights: Path | None = Field(
        default=None,
        description="a file or folder of weights to load: missing, the load fails (exit 1) as a "
        "real engine's does, so a test sees that the engine found what the fetch left",
    )

    def failure_due(self) -> bool:
        if self.fail_once_marker is None:
            return True
        if self.fail_once_marker.exists():
            return False
        self.fail_once_marker.touch()
        return True

    def load_duration(self) -> float:
        """Real seconds this load will take, jitter drawn once per process."""
        rng = random.Random(self.seed)
        jitter = rng.uniform(-self.load_jitter, self.load_jitter) if self.load_jitter else 0.0
        return self.load_seconds * (1 + jitter) * self.time_scale

    @property
    def token_interval(self) -> float:
        return self.time_scale / self.tokens_per_second

    @property
    def names(self) -> tuple[str, ...]:
        return self.served_names or (self.model,)


def settings_from_env(env: Mapping[str, str], **fixed: Any) -> EngineSettings:
    """EngineSettings from `HEARTH_SIM_<FIELD>` variables — how a container of a simulated
    image (vLLM's, Ollama's) is told its load time, speed and faults — with `fixed` on top."""
    values = {
        name: env[f"HEARTH_SIM_{name.upper()}"]
        for name in EngineSettings.model_fields
        if f"HEARTH_SIM_{name.upper()}" in env
    }
    return EngineSettings.model_validate({**values, **fixed})


def exit_now(code: int) -> None:
    """Die like a crashed engine: no cleanup, connections dropped."""
    logging.shutdown()
    os._exit(code)


class EngineState:
    """What the engine is doing: loading, or loaded. One per process."""

    def __init__(self, settings: EngineSettings, exit_fn: Callable[[int], None]) -> None:
        self.settings = settings
        self.loaded = asyncio.Event()
        self.started = time.time()
        self.active_streams = 0
        self.peak_streams = 0  # the most ever in flight at once: what a router let through
        self.streams_closed = 0
        self.exit = exit_fn

    async def load(self) -> None:
        duration = self.settings.load_duration()
        log.info("loading %s for %.2fs", self.settings.model, duration)
        weights = self.settings.weights
        if weights is not None and not weights.exists():
            log.error("loading %s failed: no weights at %s", self.settings.model, weights)
            self.exit(1)
            return
        if self.settings.failure is Failure.FAIL_LOAD:
            await asyncio.sleep(duration / 2)
            log.error("loading %s failed: out of memory (simulated)", self.settings.model)
            self.exit(3)
            return
        if self.settings.failure is Failure.NEVER_READY:
            return
        await asyncio.sleep(duration)
        self.loaded.set()
        log.info("loaded %s", self.settings.model)


_VLLM_TYPES = {400: "BadRequestError", 404: "NotFoundError", 503: "ServiceUnavailableError"}


def _error(
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


async def _body_or_error(state: EngineState, request: Request) -> dict[str, Any] | JSONResponse:
    personality = state.settings.personality
    if not state.loaded.is_set():
        return _error(
            personality, 503, f"model {state.settings.model} is still loading", "service_unavailable"
        )
    try:
        body = await request.json()
    except ValueError:
        return _error(personality, 400, "request body is not valid JSON", "invalid_request_error")
    if not isinstance(body, dict):
        return _error(personality, 400, "request body must be a JSON object", "invalid_request_error")
    asked = body.get("model")
    if personality is Personality.VLLM and asked not in state.settings.names:
        return _error(personality, 404, f"The model `{asked}` does not exist.", "not_found_error", "model")
    return body


async def _generate(state: EngineState, request: Request, chat: bool) -> Response:
    body = await _body_or_error(state, request)
    if isinstance(body, JSONResponse):
        return body
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(
                state.settings.personality,
                400,
                "`messages` must be a non-empty list",
                "invalid_request_error",
            )
        prompt = text.prompt_text(messages)
    else:
        raw = body.get("prompt", "")
        prompt = raw if isinstance(raw, str) else " ".join(map(str, raw))
    gen = Generation(state, body, prompt, chat)
    if body.get("stream"):
        return StreamingResponse(
            gen.stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    return JSONResponse(await gen.whole())


async def _embeddings(state: EngineState, request: Request) -> Response:
    body = await _body_or_error(state, request)
    if isinstance(body, JSONResponse):
        return body
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        return _error(
            state.settings.personality,
            400,
            "`input` must be a string or a non-empty list",
            "invalid_request_error",
        )
    data = [
        {"object": "embedding", "index": i, "embedding": text.embedding(str(item))}
        for i, item in enumerate(inputs)
    ]
    used = sum(text.count_tokens(str(item)) for item in inputs)
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": body.get("model", state.settings.model),
            "usage": {"prompt_tokens": used, "total_tokens": used},
        }
    )


def _health(state: EngineState) -> Response:
    settings = state.settings
    if settings.personality is Personality.VLLM:
        return Response(status_code=200)  # vLLM: an empty body; it only listens once loaded
    if state.loaded.is_set():
        if settings.personality is Personality.LLAMACPP:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "ok", "model": settings.model})
    return JSONResponse({"status": "loading", "model": settings.model}, status_code=503)


def _llamacpp_loading(state: EngineState) -> Callable[..., Any]:
    """llama-server answers every endpoint with 503 "Loading model" until the weights are in."""

    async def loading_model(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if not state.loaded.is_set():
            return _error(state.settings.personality, 503, "Loading model", "unavailable_error")
        return await call_next(request)  # type: ignore[no-any-return]

    return loading_model


def create_app(settings: EngineSettings, exit_fn: Callable[[int], None] = exit_now) -> FastAPI:
    state = EngineState(settings, exit_fn)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(state.load())
        yield
        task.cancel()

    app = FastAPI(title=f"hearth sim engine ({settings.model})", lifespan=lifespan)
    app.state.engine = state

    if settings.personality is Personality.LLAMACPP:
        app.middleware("http")(_llamacpp_loading(state))

    @app.get("/health")
    async def health() -> Response:
        return _health(state)

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        """Streams in flight and ended (however they ended), for tests and the curious."""
        return {
            "active_streams": state.active_streams,
            "peak_streams": state.peak_streams,
            "streams_closed": state.streams_closed,
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        owner = {Personality.VLLM: "vllm", Personality.LLAMACPP: "llamacpp"}.get(
            settings.personality, "hearth-sim"
        )
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": int(state.started), "owned_by": owner}
                for name in settings.names
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await _generate(state, request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _generate(state, request, chat=False)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        return await _embeddings(state, request)

    return app


async def serve(settings: EngineSettings) -> None:
    import uvicorn

    if settings.personality is Personality.OLLAMA:
        raise ValueError("the ollama personality is the homelab's simulated Ollama (hearth_sim.ollama)")
    app = create_app(settings)
    if settings.personality is Personality.VLLM:
        # vLLM binds its port only once the engine is up: until then, connections are refused.
        state: EngineState = app.state.engine
        await state.load()
        if not state.loaded.is_set():  # never ready: it never listens
            await asyncio.Event().wait()
        app.router.lifespan_context = _no_load
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", access_log=False
    )
    await uvicorn.Server(config).serve()


@asynccontextmanager
async def _no_load(_: FastAPI) -> AsyncIterator[None]:
    yield

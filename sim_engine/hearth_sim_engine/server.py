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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from hearth_sim_engine import text
from hearth_sim_engine.engine import EngineSettings, EngineState, Personality, exit_now
from hearth_sim_engine.generation import Generation, error


async def _body_orerror(state: EngineState, request: Request) -> dict[str, Any] | JSONResponse:
    personality = state.settings.personality
    if not state.loaded.is_set():
        return error(
            personality, 503, f"model {state.settings.model} is still loading", "service_unavailable"
        )
    try:
        body = await request.json()
    except ValueError:
        return error(personality, 400, "request body is not valid JSON", "invalid_request_error")
    if not isinstance(body, dict):
        return error(personality, 400, "request body must be a JSON object", "invalid_request_error")
    asked = body.get("model")
    if personality is Personality.VLLM and asked not in state.settings.names:
        return error(personality, 404, f"The model `{asked}` does not exist.", "not_found_error", "model")
    return body


async def _generate(state: EngineState, request: Request, chat: bool) -> Response:
    body = await _body_orerror(state, request)
    if isinstance(body, JSONResponse):
        return body
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(
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
    body = await _body_orerror(state, request)
    if isinstance(body, JSONResponse):
        return body
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        return error(
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
            return error(state.settings.personality, 503, "Loading model", "unavailable_error")
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

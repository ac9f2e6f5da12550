"""Ollama, simulated: the server (`serve`) and the command-line client (`pull`, `cp`, `run`,
`list`, `ps`) that the `ollama/ollama` image holds, held to how the real one behaves.

- It listens at once (`GET /` → "Ollama is running") and knows only the models pulled into it
  (`POST /api/pull`, NDJSON progress). With a registry (`HEARTH_SIM_OLLAMA_REGISTRY`, the
  homelab's hub) a pull downloads the model's layers into the store at `OLLAMA_MODELS` as Ollama
  does (`ollama_registry`), and models already in that store are known at start; without one, a
  pull is a timed stand-in (`HEARTH_SIM_PULL_SECONDS`; a name starting with `missing` does not
  exist upstream).
- A model is loaded on the first request that needs it — that request waits the load — and one
  model is loaded at a time (`OLLAMA_MAX_LOADED_MODELS=1`, as Hearth renders it).
- After `keep_alive` with no request (a request's own `keep_alive`, else `OLLAMA_KEEP_ALIVE`,
  default 5 minutes; negative = never) it unloads the model, and the next request loads it again.
- Its OpenAI-compatible `/v1/*` answers in OpenAI's shapes; a model it does not have is a 404
  "model \"x\" not found, try pulling it first".

The client talks to the server at `OLLAMA_HOST` over HTTP, exactly as the real CLI does, so an
exec probe such as `ollama pull mistral:7b && ollama run mistral hi` works in the homelab.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from hearth_sim.ollama_state import (
    VERSION,
    OllamaSettings,
    OllamaState,
    parse_duration,
    parse_host,
    registry_pull,
    tag,
    timed_pull,
)
from hearth_sim_engine import text
from hearth_sim_engine.engine import exit_now
from hearth_sim_engine.generation import Generation

log = logging.getLogger("hearth.sim.ollama")


def _openai_error(status: int, message: str, type_: str = "api_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": None, "code": None}}, status)


def _native_error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


def _not_found(name: str) -> str:
    return f'model "{name}" not found, try pulling it first'


def _keep_alive(body: dict[str, Any], settings: OllamaSettings) -> float | None:
    if "keep_alive" in body:
        return parse_duration(body["keep_alive"])
    return settings.keep_alive


async def _json(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def create_app(settings: OllamaSettings, exit_fn: Callable[[int], None] = exit_now) -> FastAPI:  # noqa: C901
    state = OllamaState(settings, exit_fn)
    app = FastAPI(title="hearth sim ollama")
    app.state.ollama = state

    @app.get("/")
    @app.head("/")
    async def root() -> Response:
        return PlainTextResponse("Ollama is running")

    @app.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": VERSION}

    @app.get("/api/tags")
    async def tags() -> dict[str, Any]:
        return {
            "models": [
                {"name": n, "model": n, "modified_at": s.modified, "size": s.size, "digest": s.digest}
                for n in state.names()
                if (s := state.find(n)) is not None
            ]
        }

    @app.get("/api/ps")
    async def ps() -> dict[str, Any]:
        if state.loaded is None:
            return {"models": []}
        left = None if state.expires is None else max(0.0, state.expires - time.monotonic())
        expires = (
            "0001-01-01T00:00:00Z"
            if left is None
            else datetime.fromtimestamp(time.time() + left, UTC).isoformat()
        )
        return {"models": [{"name": state.loaded, "model": state.loaded, "expires_at": expires}]}

    @app.post("/api/pull")
    async def pull(request: Request) -> Response:
        body = await _json(request) or {}
        name = tag(str(body.get("model") or body.get("name") or ""))
        stream = body.get("stream", True) is not False
        if state.settings.registry is not None and state.disk is not None:
            lines = registry_pull(state, name)
            if stream:
                return StreamingResponse(_encoded(lines), media_type="application/x-ndjson")
            said = [line async for line in lines]
            last = said[-1] if said else {}
            if "error" in last:
                return _native_error(500, str(last["error"]))
            return JSONResponse({"status": "success"})
        if name.startswith("missing"):
            message = "pull model manifest: file does not exist"
            if not stream:
                return _native_error(500, message)
            return StreamingResponse(_ndjson([{"status": "pulling manifest"}, {"error": message}]))
        progress = timed_pull(state, name)
        if stream:
            return StreamingResponse(progress, media_type="application/x-ndjson")
        async for _ in progress:
            pass
        return JSONResponse({"status": "success"})

    @app.post("/api/copy")
    async def copy(request: Request) -> Response:
        body = await _json(request) or {}
        source, destination = tag(str(body.get("source", ""))), tag(str(body.get("destination", "")))
        if not state.copy(source, destination):
            return _native_error(404, f'model "{source}" not found')
        return Response(status_code=200)

    @app.post("/api/generate")
    async def generate(request: Request) -> Response:
        """Enough of the native API for `ollama run NAME PROMPT`: an empty prompt only loads."""
        body = await _json(request)
        if body is None:
            return _native_error(400, "invalid JSON")
        name = tag(str(body.get("model", "")))
        if state.find(name) is None:
            return _native_error(404, _not_found(str(body.get("model", ""))))
        state.begin()
        try:
            await state.load(name)
            prompt = str(body.get("prompt") or "")
            answer = ""
            if prompt:
                gen = Generation(state.engine, {**body, "model": name}, prompt, chat=False)
                answer = "".join([token async for _, token in gen.paced()])
        finally:
            state.end(_keep_alive(body, settings))
        done = {"model": name, "created_at": datetime.now(UTC).isoformat(), "response": answer, "done": True}
        if body.get("stream", True) is False:
            return JSONResponse({**done, "done_reason": "stop" if prompt else "load"})
        return StreamingResponse(_ndjson([{**done, "done_reason": "stop" if prompt else "load"}]))

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "library"} for n in state.names()
            ],
        }

    async def openai(request: Request, chat: bool) -> Response:
        body = await _json(request)
        if body is None:
            return _openai_error(400, "invalid request body", "invalid_request_error")
        asked = str(body.get("model", ""))
        name = tag(asked)
        if state.find(name) is None:
            return _openai_error(404, _not_found(asked), "not_found_error")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return _openai_error(400, "messages is required", "invalid_request_error")
            prompt = text.prompt_text(messages)
        else:
            raw = body.get("prompt", "")
            prompt = raw if isinstance(raw, str) else " ".join(map(str, raw))
        keep = _keep_alive(body, settings)
        state.begin()
        try:
            await state.load(name)  # the request waits the load: Ollama loads on demand
        except BaseException:
            state.end(keep)
            raise
        gen = Generation(state.engine, {**body, "model": asked}, prompt, chat)
        if not body.get("stream"):
            try:
                return JSONResponse(await gen.whole())
            finally:
                state.end(keep)
        return StreamingResponse(_then(gen.stream(), lambda: state.end(keep)), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await openai(request, chat=True)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await openai(request, chat=False)

    return app


async def _then(frames: AsyncIterator[bytes], after: Callable[[], None]) -> AsyncIterator[bytes]:
    try:
        async for frame in frames:
            yield frame
    finally:
        after()


async def _ndjson(lines: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    for line in lines:
        yield json.dumps(line).encode() + b"\n"


async def _encoded(lines: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield json.dumps(line).encode() + b"\n"


async def serve(settings: OllamaSettings) -> None:
    import uvicorn

    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_level="warning", access_log=False
    )
    await uvicorn.Server(config).serve()


# --- the command-line client ---------------------------------------------------------------


def _client_url() -> str:
    host, port = parse_host(os.environ.get("OLLAMA_HOST"))
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"


def _cli(argv: list[str]) -> int:
    import httpx

    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: ollama serve | pull NAME | cp SOURCE DEST | run NAME [PROMPT] | list | ps")
        return 0
    command, rest = argv[0], argv[1:]
    if command == "serve":
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        settings = OllamaSettings.from_env()
        print(f"ollama (simulated {VERSION}): listening on {settings.host}:{settings.port}", flush=True)
        asyncio.run(serve(settings))
        return 0
    with httpx.Client(base_url=_client_url(), timeout=None) as http:
        try:
            return _client_command(http, command, rest)
        except httpx.ConnectError:
            print("Error: could not connect to ollama app, is it running?", file=sys.stderr)
            return 1


def _client_command(http: Any, command: str, rest: list[str]) -> int:
    match command, rest:
        case "pull", [name]:
            with http.stream("POST", "/api/pull", json={"model": name}) as response:
                for line in response.iter_lines():
                    progress = json.loads(line)
                    if "error" in progress:
                        print(f"Error: {progress['error']}", file=sys.stderr)
                        return 1
                    print(progress.get("status", ""), flush=True)
            return 0
        case "cp", [source, destination]:
            response = http.post("/api/copy", json={"source": source, "destination": destination})
            if response.status_code != 200:
                print(f"Error: {response.json().get('error')}", file=sys.stderr)
                return 1
            print(f"copied '{source}' to '{destination}'")
            return 0
        case "run", [name, *prompt]:
            body = {"model": name, "prompt": " ".join(prompt), "stream": False}
            response = http.post("/api/generate", json=body)
            if response.status_code != 200:
                print(f"Error: {response.json().get('error')}", file=sys.stderr)
                return 1
            print(response.json().get("response", ""))
            return 0
        case "list", []:
            for model in http.get("/api/tags").json()["models"]:
                print(model["name"])
            return 0
        case "ps", []:
            for model in http.get("/api/ps").json()["models"]:
                print(model["name"], model["expires_at"])
            return 0
    print(f"Error: unknown command or arguments: {command} {' '.join(rest)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))

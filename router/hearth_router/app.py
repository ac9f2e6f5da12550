"""The router's HTTP surface: thin routes over `Service` and `StreamJob`.

`create_app(settings, ...)` builds everything (no module-level singletons). Middleware is pure
ASGI: Starlette's BaseHTTPMiddleware would hide client disconnects from the streams.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from kubernetes_asyncio import client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hearth_router import chunks, models_api
from hearth_router.annotations import Annotator
from hearth_router.errors import RouterError, bad_request
from hearth_router.metrics import RouterMetrics
from hearth_router.registry import Registry
from hearth_router.service import Service
from hearth_router.settings import RouterSettings
from hearth_router.streaming import StreamJob, new_request_id
from hearth_router.upstream import Upstream

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    prompt: str | list[Any] = ""
    stream: bool = False


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[Any]


def error_response(exc: RouterError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


class BodyLimit:
    """413 for bodies over the limit, checked on Content-Length and on the bytes as they come."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = RouterError(
            413,
            f"the request body is larger than {self.limit} bytes",
            "invalid_request_error",
            "request_too_large",
        )
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await error_response(too_big)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await error_response(too_big)(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(
    settings: RouterSettings, api: client.ApiClient | None = None, registry: Registry | None = None
) -> FastAPI:
    """The router app. `api` is the Kubernetes client (watch and annotations); tests may pass a
    pre-filled `registry` and no `api`."""
    metrics = RouterMetrics()
    service = Service(
        settings=settings,
        registry=registry or Registry(api, settings.namespace),
        annotator=Annotator(api, settings.activity_interval),
        upstream=Upstream(settings.connect_timeout, settings.stall_timeout),
        metrics=metrics,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watch = asyncio.create_task(service.registry.run(), name="registry") if api is not None else None
        yield
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        for running in list(service.active.values()):
            running.cancel()
        await service.upstream.close()
        if api is not None:
            await api.close()

    app = FastAPI(title="Hearth router", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service

    @app.exception_handler(RouterError)
    async def router_error(_: Request, exc: RouterError) -> JSONResponse:
        return error_response(exc)

    def authorize(request: Request) -> None:
        if not settings.api_keys:
            return
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token or not any(hmac.compare_digest(token, key) for key in settings.api_keys):
            raise RouterError(
                401,
                "missing or invalid API key (send Authorization: Bearer <key>)",
                "invalid_request_error",
                "invalid_api_key",
            )

    async def parse(request: Request, model: type[BaseModel]) -> tuple[BaseModel, dict[str, Any]]:
        authorize(request)
        try:
            raw = json.loads(await request.body())
        except ValueError:
            raise bad_request("the request body is not valid JSON", "invalid_json") from None
        if not isinstance(raw, dict):
            raise bad_request("the request body must be a JSON object")
        try:
            return model.model_validate(raw), raw
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "body"
            raise bad_request(f"{where}: {err['msg']}", "invalid_field") from None

    async def serve(
        request: Request, kind: type[ChatRequest] | type[CompletionRequest], path: str
    ) -> Response:
        parsed, raw = await parse(request, kind)
        assert isinstance(parsed, ChatRequest | CompletionRequest)
        entry = service.resolve(parsed.model)
        service.check_admission(entry)
        chat = kind is ChatRequest
        ident = chunks.StreamIdentity(new_request_id(chat), int(time.time()), parsed.model, chat)
        if parsed.stream:
            job = StreamJob(service, entry, raw, ident, path)
            return StreamingResponse(job.sse(), media_type="text/event-stream", headers=STREAM_HEADERS)
        return JSONResponse(await service.complete(entry, raw, path, ident))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await serve(request, ChatRequest, "/v1/chat/completions")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await serve(request, CompletionRequest, "/v1/completions")

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        parsed, raw = await parse(request, EmbeddingRequest)
        assert isinstance(parsed, EmbeddingRequest)
        entry = service.resolve(parsed.model)
        service.check_admission(entry)
        ident = chunks.StreamIdentity(new_request_id(False), int(time.time()), parsed.model, False)
        return JSONResponse(await service.complete(entry, raw, "/v1/embeddings", ident))

    @app.post("/v1/requests/{request_id}/cancel")
    async def cancel(request_id: str, request: Request) -> dict[str, Any]:
        authorize(request)
        running = service.active.get(request_id)
        if running is None:
            raise RouterError(
                404, f"no request {request_id} is in flight", "invalid_request_error", "not_found"
            )
        running.cancel()
        return {"id": request_id, "cancelled": True}

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        authorize(request)
        return models_api.openai_models(service)

    @app.get("/api/models")
    async def api_models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {"models": models_api.model_views(service)}

    @app.get("/api/models/events")
    async def api_model_events(request: Request) -> StreamingResponse:
        authorize(request)
        return StreamingResponse(
            models_api.model_events(service), media_type="text/event-stream", headers=STREAM_HEADERS
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        if service.registry.ready.is_set():
            return JSONResponse({"status": "ready", "models": len(service.registry.entries)})
        return JSONResponse({"status": "waiting for the first list of ModelDeployments"}, status_code=503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    # Browser clients (Open WebUI's direct connections, a dashboard on another origin).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
    return app

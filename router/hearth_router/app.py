"""The router's HTTP surface: thin routes over the `Dispatcher` and `StreamJob`.

`create_app(settings, ...)` builds everything (no module-level singletons); the API key is a
dependency of every route but the probes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from kubernetes_asyncio import client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hearth_router import chunks, models_api
from hearth_router.annotations import Annotator
from hearth_router.dispatcher import Admission, Dispatcher
from hearth_router.errors import RouterError
from hearth_router.limits import BodyLimit, error_response
from hearth_router.metrics import RouterMetrics
from hearth_router.registry import Registry
from hearth_router.requests import (
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    bearer_token,
    check_key,
    parse,
)
from hearth_router.settings import RouterSettings
from hearth_router.streaming import StreamJob, new_request_id
from hearth_router.upstream import Upstream

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def create_app(
    settings: RouterSettings,
    api: client.ApiClient | None = None,
    registry: Registry | None = None,
    upstream: Upstream | None = None,
) -> FastAPI:
    """The router app. `api` is the Kubernetes client (watch and annotations); tests may pass a
    pre-filled `registry` and no `api`, and an `upstream` with its own transport."""
    dispatcher = Dispatcher(
        settings=settings,
        registry=registry or Registry(api, settings.namespace),
        annotator=Annotator(api, settings.activity_interval),
        upstream=upstream or Upstream(settings.connect_timeout, settings.stall_timeout),
        metrics=RouterMetrics(),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        watch = asyncio.create_task(dispatcher.registry.run(), name="registry") if api is not None else None
        yield
        if watch is not None:
            watch.cancel()
            await asyncio.wait({watch})  # never swallows a cancellation of the lifespan itself
        for running in list(dispatcher.active.values()):
            running.cancel()
        await dispatcher.upstream.close()
        if api is not None:
            await api.close()

    def authorized(request: Request) -> None:
        check_key(bearer_token(request), settings.api_keys)

    app = FastAPI(title="Hearth router", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.dispatcher = dispatcher
    app.add_exception_handler(RouterError, _router_error)  # type: ignore[arg-type]
    app.include_router(_api_routes(dispatcher), dependencies=[Depends(authorized)])
    app.include_router(_probe_routes(dispatcher))
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


class AdmittedStream(StreamingResponse):
    """A streamed answer that owns its admission and closes it however the response ends —
    also when the client hangs up before the body began, where the body's own cleanup never
    runs."""

    def __init__(self, content: AsyncIterator[bytes], admission: Admission) -> None:
        super().__init__(content, media_type="text/event-stream", headers=STREAM_HEADERS)
        self.admission = admission

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.admission.close()


async def _router_error(_: Request, exc: RouterError) -> JSONResponse:
    return error_response(exc)


def _api_routes(dispatcher: Dispatcher) -> APIRouter:
    routes = APIRouter()

    async def serve(request: Request, kind: type[ChatRequest | CompletionRequest], path: str) -> Response:
        parsed, raw = await parse(request, kind)
        entry = dispatcher.resolve(parsed.model)
        chat = kind is ChatRequest
        ident = chunks.StreamIdentity(new_request_id(chat), int(time.time()), parsed.model, chat)
        if parsed.stream:
            # Admitted here, before the response begins: past the waiter limit it is a 429, not
            # an error event in a stream that was already accepted.
            admission = dispatcher.admit(entry, raw)
            job = StreamJob(dispatcher, admission, raw, ident, path)
            return AdmittedStream(job.sse(), admission)
        return JSONResponse(await dispatcher.complete(entry, raw, path, ident))

    @routes.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await serve(request, ChatRequest, "/v1/chat/completions")

    @routes.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await serve(request, CompletionRequest, "/v1/completions")

    @routes.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        parsed, raw = await parse(request, EmbeddingRequest)
        entry = dispatcher.resolve(parsed.model)
        ident = chunks.StreamIdentity(new_request_id(False), int(time.time()), parsed.model, False)
        return JSONResponse(await dispatcher.complete(entry, raw, "/v1/embeddings", ident))

    @routes.post("/v1/requests/{request_id}/cancel")
    async def cancel(request_id: str) -> dict[str, Any]:
        running = dispatcher.active.get(request_id)
        if running is None:
            raise RouterError(
                404, f"no request {request_id} is in flight", "invalid_request_error", "not_found"
            )
        running.cancel()
        return {"id": request_id, "cancelled": True}

    @routes.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return models_api.openai_models(dispatcher)

    @routes.get("/api/models")
    async def api_models() -> dict[str, Any]:
        return {"models": models_api.model_views(dispatcher)}

    @routes.get("/api/models/events")
    async def api_model_events() -> StreamingResponse:
        return StreamingResponse(
            models_api.model_events(dispatcher), media_type="text/event-stream", headers=STREAM_HEADERS
        )

    return routes


def _probe_routes(dispatcher: Dispatcher) -> APIRouter:
    """Kubernetes' probes and Prometheus: no key (they come from the cluster, not from users)."""
    routes = APIRouter()

    @routes.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @routes.get("/readyz")
    async def readyz() -> Response:
        if dispatcher.registry.ready.is_set():
            return JSONResponse({"status": "ready", "models": len(dispatcher.registry.entries)})
        return JSONResponse({"status": "waiting for the first list of ModelDeployments"}, status_code=503)

    @routes.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(dispatcher.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return routes

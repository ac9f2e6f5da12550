"""The router's HTTP surface: thin routes over the services (services.py) and `StreamJob`.

`create_app(settings, ...)` builds everything (no module-level singletons); the API key is a
dependency of every route but the probes (the two completion routes, bare ASGI endpoints in
completions.py, check it themselves).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from kubernetes_asyncio import client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from hearth_router import chunks, completions, models_api
from hearth_router.completions import STREAM_HEADERS
from hearth_router.errors import RouterError, unknown_model
from hearth_router.keys import KeyRing
from hearth_router.limits import BodyLimit, error_response
from hearth_router.nodes import Nodes
from hearth_router.registry import Entry, Registry
from hearth_router.requests import (
    EmbeddingRequest,
    bearer_token,
    openapi_body,
    parse,
)
from hearth_router.services import Services, build
from hearth_router.settings import RouterSettings
from hearth_router.streaming import new_request_id
from hearth_router.upstream import Upstream

DASHBOARD = Path(__file__).with_name("dashboard")


def create_app(
    settings: RouterSettings,
    api: client.ApiClient | None = None,
    registry: Registry | None = None,
    upstream: Upstream | None = None,
) -> FastAPI:
    """The router app. `api` is the Kubernetes client (watch and annotations); tests may pass a
    pre-filled `registry` and no `api`, and an `upstream` with its own transport."""
    services = build(settings, api, registry, upstream)
    line, registry, inflight = services.line, services.registry, services.inflight

    nodes = Nodes(api, registry.changed)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await line.start()
        watches = set()
        if api is not None:
            watches = {
                asyncio.create_task(registry.run(), name="registry"),
                asyncio.create_task(nodes.run(), name="nodes"),
            }
        yield
        for watch in watches:
            watch.cancel()
        if watches:
            await asyncio.wait(watches)  # never swallows a cancellation of the lifespan itself
        for running in list(inflight.active.values()):
            running.cancel()
        await services.upstream.close()
        await line.close()
        if api is not None:
            await api.close()

    keyring = KeyRing(settings.api_keys, settings.api_keys_file)

    async def authorized(request: Request) -> None:
        # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
        # per request (and, past its 40 threads, a wait behind the others) for a string compare.
        keyring.check(bearer_token(request))

    app = FastAPI(title="Hearth router", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.services = services
    app.add_exception_handler(RouterError, _router_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    for path in completions.PATHS:  # bare ASGI: a stream's first event before anything else
        endpoint = completions.Completions(
            services.admissions, services.answers, services.streams, keyring, path
        )
        app.router.routes.append(Route(path, endpoint, methods=["POST"]))
    app.include_router(_api_routes(services), dependencies=[Depends(authorized)])
    app.include_router(_dashboard_routes(services, nodes), dependencies=[Depends(authorized)])
    app.include_router(_probe_routes(services))
    # The dashboard's page and its modules: no key (they hold no data; the page asks for one).
    app.add_api_route("/", _dashboard_page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=DASHBOARD), name="dashboard")
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, header_limit=settings.max_header_bytes)
    # Browser clients (Open WebUI's direct connections, a dashboard on another origin).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
        max_age=600,
    )
    documented = app.openapi

    def openapi() -> dict[str, Any]:
        schema = documented()
        schema["paths"] = {**completions.openapi_paths(), **schema["paths"]}
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _router_error(_: Request, exc: RouterError) -> JSONResponse:
    return error_response(exc)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own 404/405 (no such path, wrong method) in OpenAI's shape too: a client
    that reads `error.message` must not meet `{"detail": …}`."""
    if exc.status_code == 404:
        message, code = f"no such endpoint: {request.method} {request.url.path}", "not_found"
    elif exc.status_code == 405:
        message, code = f"{request.method} is not allowed on {request.url.path}", "method_not_allowed"
    else:
        message, code = str(exc.detail), None
    failure = RouterError(exc.status_code, message, "invalid_request_error", code)
    return JSONResponse(failure.body(), status_code=exc.status_code, headers=exc.headers)


def _api_routes(services: Services) -> APIRouter:
    admissions, answers, inflight = services.admissions, services.answers, services.inflight
    routes = APIRouter()

    @routes.post("/v1/embeddings", openapi_extra=openapi_body(EmbeddingRequest))
    async def embeddings(request: Request) -> Response:
        parsed, raw = await parse(request, EmbeddingRequest)
        entry = admissions.resolve(parsed.model)
        ident = chunks.StreamIdentity(new_request_id(False), int(time.time()), parsed.model, False)
        return JSONResponse(await answers.complete(entry, raw, "/v1/embeddings", ident))

    @routes.post("/v1/requests/{request_id}/cancel")
    async def cancel(request_id: str) -> dict[str, Any]:
        running = inflight.active.get(request_id)
        if running is None:
            raise RouterError(
                404, f"no request {request_id} is in flight", "invalid_request_error", "not_found"
            )
        running.cancel()
        return {"id": request_id, "cancelled": True}

    @routes.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return models_api.openai_models(services.registry)

    return routes


async def _dashboard_page() -> FileResponse:
    return FileResponse(DASHBOARD / "index.html", headers={"Cache-Control": "no-cache"})


def _dashboard_routes(services: Services, nodes: Nodes) -> APIRouter:
    """What the dashboard reads (models, GPUs, a feed of both) and its two actions."""
    board = models_api.Board(services.registry, services.admissions, services.inflight, nodes)
    registry, annotator = services.registry, services.annotator
    routes = APIRouter()

    @routes.get("/api/models")
    async def api_models() -> dict[str, Any]:
        return {"models": board.model_views()}

    @routes.get("/api/gpus")
    async def api_gpus() -> dict[str, Any]:
        return board.gpus()

    @routes.get("/api/models/events")
    async def api_model_events() -> StreamingResponse:
        return StreamingResponse(
            board.events(services.settings.keepalive_interval),
            media_type="text/event-stream",
            headers=STREAM_HEADERS,
        )

    def named(name: str) -> Entry:
        entry = registry.resolve(name)
        if entry is None:
            raise unknown_model(name, registry.names())
        return entry

    @routes.post("/api/models/{name}/wake", status_code=202)
    async def wake(name: str) -> dict[str, Any]:
        entry = named(name)
        await annotator.request_wake(entry.key)
        return {"model": entry.md.spec.model, "requested": "wake", "phase": entry.md.status.phase}

    @routes.post("/api/models/{name}/sleep", status_code=202)
    async def sleep(name: str) -> dict[str, Any]:
        entry = named(name)
        pinned = entry.md.spec.scaling.min_replicas
        if pinned > 0:
            raise RouterError(
                409,
                f"{entry.md.spec.model} is kept warm by scaling.minReplicas={pinned}; "
                "set it to 0 to let it be unloaded",
                "invalid_request_error",
                "pinned_warm",
            )
        await annotator.request_sleep(entry.key)
        return {"model": entry.md.spec.model, "requested": "sleep", "phase": entry.md.status.phase}

    return routes


def _probe_routes(services: Services) -> APIRouter:
    """Kubernetes' probes and Prometheus: no key (they come from the cluster, not from users)."""
    registry, line, inflight = services.registry, services.line, services.inflight
    routes = APIRouter()

    @routes.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @routes.get("/readyz")
    async def readyz() -> Response:
        if inflight.draining:
            return JSONResponse({"status": "draining: stopping after the streams it holds"}, status_code=503)
        if registry.ready.is_set():
            ready: dict[str, Any] = {"status": "ready", "models": len(registry.entries)}
            # Still ready on its own queues: this replica serves, the line is only less exact.
            if line.degraded is not None:
                ready["degraded"] = line.degraded
            return JSONResponse(ready)
        return JSONResponse({"status": "waiting for the first list of ModelDeployments"}, status_code=503)

    @routes.get("/metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return routes

"""The router app's own edges, driven in-process (no cluster): start-up and browsers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn

from hearth_router.app import create_app
from hearth_router.registry import Registry
from hearth_router.settings import RouterSettings
from hearth_router.upstream import Upstream
from hearth_sim_engine.engine import EngineSettings
from hearth_sim_engine.server import create_app as create_engine


def client(registry: Registry, **settings: object) -> httpx.AsyncClient:
    return client_for(create_app(RouterSettings.model_validate(settings), None, registry))


async def test_before_the_first_list_requests_get_503_not_404() -> None:
    async with client(Registry(None)) as http:
        assert (await http.get("/readyz")).status_code == 503
        r = await http.post(
            "/v1/chat/completions", json={"model": "x", "messages": [{"role": "user", "content": "x"}]}
        )
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
    assert r.headers["retry-after"] == "2"


async def test_auto_with_nothing_deployed_is_a_404_not_a_try_later() -> None:
    registry = Registry(None)
    registry.ready.set()
    async with client(registry) as http:
        r = await http.post(
            "/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "x"}]}
        )
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert "Known models: none" in r.json()["error"]["message"]


async def test_browsers_may_call_it_from_other_origins() -> None:
    registry = Registry(None)
    registry.ready.set()
    async with client(registry, cors_origins=["http://webui.lan"]) as http:
        preflight = await http.options(
            "/v1/chat/completions",
            headers={
                "Origin": "http://webui.lan",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        other = await http.options(
            "/v1/chat/completions",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://webui.lan"
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers


def md_body(phase: str, endpoints: list[str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "medium", "namespace": "default", "resourceVersion": "1"},
        "spec": {"model": "medium", "engine": "sim", "gpu": {"class": "rtx3090", "vramGiB": 14}},
        "status": {"phase": phase, "endpoints": endpoints or [], "gpuClass": "rtx3090", **status},
    }


async def test_a_streamed_request_walks_every_stage_in_process() -> None:
    """Cold → Loading → Warm seen by the registry; the engine is the sim engine's app itself."""
    engine = create_engine(EngineSettings(model="medium", load_seconds=0, tokens_per_second=1000))
    registry = Registry(None)
    registry.apply("ADDED", md_body("Cold", warmup={"estimateSeconds": 15}))
    registry.ready.set()
    upstream = Upstream(5, 30)
    app = create_app(RouterSettings(loading_interval=0.05), None, registry, upstream)
    admissions = app.state.services.admissions
    async with served(engine) as engine_url, client_for(app) as http:
        await asyncio.wait_for(engine.state.engine.loaded.wait(), 5)
        request = asyncio.create_task(
            http.post(
                "/v1/chat/completions",
                json={"model": "medium", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            )
        )
        await asyncio.wait_for(admitted(admissions, "default/medium", request), 10)
        registry.apply("MODIFIED", md_body("Loading", loadingSince=datetime.now(UTC).isoformat()))
        registry.apply("MODIFIED", md_body("Warm", [engine_url], node="gpu-3090"))
        response = await asyncio.wait_for(request, 10)
    await upstream.close()
    assert response.status_code == 200
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    statuses = [e["status"] for e in events if "status" in e]
    assert statuses[0] == "routing" and "loading" in statuses
    assert statuses[-2:] == ["generating", "done"]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if "status" not in e)
    done = events[-1]
    assert text and done["content"] == text and done["node"] == "gpu-3090"
    assert done["message"].startswith("Warmed up in ")
    assert response.text.endswith("data: [DONE]\n\n")
    assert admissions.waiters.count("default/medium") == 0 and admissions.line.inflight == {}


async def admitted(admissions: Any, key: str, request: asyncio.Task[Any]) -> None:
    """Until the request waits for its model (or has ended, for a failure to show)."""
    while admissions.waiters.count(key) == 0 and not request.done():
        await admissions.registry.wait_change(0.01)


@contextlib.asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """An ASGI app (the sim engine's) on a loopback port, lifespan and all: the router reaches
    engines over the network only."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the engine did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router")


async def test_a_burst_past_the_waiter_limit_admits_exactly_the_limit() -> None:
    """Ten streams at a cold model whose limit is three: three wait, seven get 429 at once —
    and the three still get their answers when the model is up."""
    engine = create_engine(EngineSettings(model="medium", load_seconds=0, tokens_per_second=1000))
    registry = Registry(None)
    registry.apply("ADDED", md_body("Cold", warmup={"estimateSeconds": 15}))
    registry.ready.set()
    upstream = Upstream(5, 30)
    app = create_app(RouterSettings(max_waiters=3, loading_interval=0.05), None, registry, upstream)
    admissions = app.state.services.admissions
    body = {"model": "medium", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with served(engine) as engine_url, client_for(app) as http:
        await asyncio.wait_for(engine.state.engine.loaded.wait(), 5)
        pending = {asyncio.create_task(http.post("/v1/chat/completions", json=body)) for _ in range(10)}
        done: set[asyncio.Task[httpx.Response]] = set()
        while len(done) < 7:  # the refused answer at once; the admitted wait for the model
            finished, pending = await asyncio.wait(pending, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            assert finished, f"only {len(done)} requests were answered while the model was cold"
            done |= finished
        refused = [t.result() for t in done if t.result().status_code == 429]
        assert len(pending) == 3 and admissions.waiters.count("default/medium") == 3
        registry.apply("MODIFIED", md_body("Warm", [engine_url], node="gpu-3090"))
        admitted = await asyncio.wait_for(asyncio.gather(*pending), 10)
    await upstream.close()
    assert len(refused) == 7 and all(r.headers["retry-after"] == "15" for r in refused)
    assert refused[0].json()["error"]["code"] == "too_many_waiters"
    assert [r.status_code for r in admitted] == [200, 200, 200]
    assert all('"status":"done"' in r.text for r in admitted)
    assert admissions.waiters.count("default/medium") == 0 and admissions.line.inflight == {}


async def test_queued_streams_are_told_estimates_that_never_rise_unexplained() -> None:
    """Eight streams at a warm model with one slot: each is told its place and an ETA that only
    falls — or, when it must rise, says why — never 0 s, and the first, made before any answer
    was measured, says it is a first estimate."""
    engine = create_engine(EngineSettings(model="medium", load_seconds=0, tokens_per_second=400))
    registry = Registry(None)
    upstream = Upstream(5, 30)
    app = create_app(RouterSettings(loading_interval=0.05), None, registry, upstream)
    body = {"model": "medium", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with served(engine) as engine_url, client_for(app) as http:
        await asyncio.wait_for(engine.state.engine.loaded.wait(), 5)
        warm = md_body("Warm", [engine_url], node="gpu-3090")
        warm["spec"]["concurrency"] = 1
        registry.apply("ADDED", warm)
        registry.ready.set()
        responses = await asyncio.wait_for(
            asyncio.gather(*(http.post("/v1/chat/completions", json=body) for _ in range(8))), 30
        )
    await upstream.close()
    told = [
        [
            e
            for e in map(json.loads, (ln[6:] for ln in r.text.splitlines() if ln.startswith("data: {")))
            if e.get("status") == "queued"
        ]
        for r in responses
    ]
    assert all('"status":"done"' in r.text for r in responses)
    assert sum(len(events) >= 3 for events in told) >= 4, "too few queued updates to judge"
    for events in told:
        for before, after in itertools.pairwise(events):
            assert after["queue_position"] <= before["queue_position"]
            if after["estimated_time"] > before["estimated_time"]:
                assert "longer than estimated" in after["message"], (before, after)
        assert all(e["estimated_time"] >= 1 for e in events)
    first = min((e for events in told for e in events), key=lambda e: e["timestamp"])
    assert "a first estimate: no answer from medium measured yet" in first["message"]

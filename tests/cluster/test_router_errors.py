"""Every error the router can give, with the test playing the operator's part: it writes
ModelDeployment status through the API, and runs sim engines itself where one is needed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from hearth_router.registry import Registry
from hearth_sim.apiserver import serve_api
from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import ApiError, Kube

from .conftest import EngineProc, eventually, failing_engine, free_port
from .router_helpers import CHAT, RouterProcess, chat, sse

MD_API, MDS = "hearth.dev/v1alpha1", "modeldeployments"
StartEngine = Callable[..., EngineProc]


def md(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": MD_API,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": name, "engine": "sim", "gpu": {"class": "any", "vramGiB": 4}, **spec},
    }


async def put_model(kube: Kube, name: str, status: dict[str, Any], **spec: Any) -> None:
    try:
        await kube.create(MD_API, MDS, "default", md(name, **spec))
    except ApiError as exc:
        if exc.code != 409:  # it exists already: only its status changes
            raise
    await kube.patch(MD_API, MDS, "default", name, {"status": status}, sub="status")


def warm(endpoint: str) -> dict[str, Any]:
    return {
        "phase": "Warm",
        "node": "gpu-3090",
        "gpuClass": "rtx3090",
        "endpoints": [endpoint],
        "readyReplicas": 1,
        "warmup": {"estimateSeconds": 7},
    }


LOADING_FOREVER = {
    "phase": "Loading",
    "node": "gpu-3090",
    "gpuClass": "rtx3090",
    "loadingSince": "2026-01-01T00:00:00Z",
    "warmup": {"estimateSeconds": 42},
}


@pytest.fixture(scope="module")
def router(homelab: HomelabThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RouterProcess]:
    r = RouterProcess(
        homelab,
        tmp_path_factory.mktemp("router"),
        stall_timeout=1,
        hold_timeout_min=2,
        hold_timeout_factor=0,
        max_waiters=2,
        max_body_bytes=4096,
        unreachable_retry_seconds=0.3,
    ).start()
    yield r
    r.stop()


@pytest.fixture
async def kube(homelab: HomelabThread) -> AsyncIterator[Kube]:
    client = Kube(homelab.homelab.url)
    yield client
    await client.close()


@pytest.fixture
async def http(router: RouterProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=router.url, timeout=30) as client:
        yield client


async def seen_by_router(http: httpx.AsyncClient, name: str, phase: str) -> None:
    async def check() -> bool:
        models = (await http.get("/v1/models")).json()["data"]
        return any(m["id"] == name and m["phase"] == phase for m in models)

    await eventually(check, what=f"the router to see {name} {phase}")


def sdk(router: RouterProcess, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{router.url}/v1", api_key=key, max_retries=0)


async def test_bad_bodies_are_400(http: httpx.AsyncClient) -> None:
    r = await http.post(CHAT, content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = await http.post(CHAT, json={"model": "x", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("messages:")
    r = await http.post(CHAT, json=["a", "list"])
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


async def test_unknown_model_is_404_listing_the_known(kube: Kube, http: httpx.AsyncClient) -> None:
    await put_model(kube, "known", {"phase": "Cold"})
    await seen_by_router(http, "known", "Cold")
    r = await http.post(CHAT, json=chat("nope"))
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "model_not_found" and "known" in err["message"] and "'nope'" in err["message"]


async def test_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    r = await http.post(CHAT, json=chat("known", padding="x" * 10_000))
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


async def test_a_failed_model_errs_at_once_with_the_operators_message(
    kube: Kube, router: RouterProcess, http: httpx.AsyncClient
) -> None:
    await put_model(
        kube, "broken", {"phase": "Failed", "message": "the engine crashed 3 times (exit code 3)"}
    )
    await seen_by_router(http, "broken", "Failed")
    for stream in (True, False):
        r = await http.post(CHAT, json=chat("broken", stream=stream))
        # 503 model_failed at once, not 504 load_timeout after holding the request.
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_failed"
        assert "the engine crashed 3 times" in r.json()["error"]["message"]
    with pytest.raises(openai.InternalServerError, match="crashed 3 times"):
        sdk(router).chat.completions.create(model="broken", messages=[{"role": "user", "content": "x"}])


async def test_a_model_no_node_can_hold_errs_at_once(kube: Kube, http: httpx.AsyncClient) -> None:
    await put_model(
        kube,
        "toobig",
        {
            "phase": "Unschedulable",
            "message": "no node has any GPU with 40 GiB",
            "conditions": [
                {"type": "Scheduled", "status": "False", "reason": "NoSuitableNode", "message": "no node"}
            ],
        },
    )
    await seen_by_router(http, "toobig", "Unschedulable")
    r = await http.post(CHAT, json=chat("toobig"))
    assert r.status_code == 503 and "40 GiB" in r.json()["error"]["message"]


async def test_too_many_waiters_is_429_with_retry_after_from_the_estimate(
    kube: Kube, http: httpx.AsyncClient
) -> None:
    await put_model(kube, "slow", LOADING_FOREVER)
    await seen_by_router(http, "slow", "Loading")
    hold = [asyncio.create_task(sse(http, CHAT, chat("slow"))) for _ in range(2)]  # max_waiters=2

    async def full() -> bool:
        models = (await http.get("/api/models")).json()["models"]
        return any(m["name"] == "slow" and m["router"]["waiters"] == 2 for m in models)

    await eventually(full, what="both streams to wait for the model")
    refused = await sse(http, CHAT, chat("slow"), stop_after=1)
    assert refused.status == 429
    assert refused.headers["retry-after"] == "42"
    assert refused.body is not None and refused.body["error"]["code"] == "too_many_waiters"
    for task in hold:
        stream = await task  # they end by the hold timeout
        assert stream.of("error") and stream.events[-1].data == "[DONE]"


async def test_a_load_past_the_hold_timeout_ends_with_an_error_event(
    kube: Kube, http: httpx.AsyncClient
) -> None:
    await put_model(kube, "stuck", LOADING_FOREVER)
    await seen_by_router(http, "stuck", "Loading")
    stream = await sse(http, CHAT, chat("stuck"))
    assert stream.status == 200
    assert stream.statuses[0] == "routing" and stream.statuses[-1] == "error"
    assert "loading" in stream.statuses
    error = stream.of("error")[0].data
    assert isinstance(error, dict) and error["error"]["code"] == "load_timeout"
    assert "did not finish loading" in error["message"]
    assert error["event"]["data"]["done"] is True
    assert stream.events[-1].data == "[DONE]"
    last_loading = stream.of("loading")[-1].data
    assert isinstance(last_loading, dict) and "taking longer than usual" in last_loading["message"]
    assert last_loading["estimated_time"] >= 1  # an overrun still shows a figure, never 0


async def test_engine_connection_refused_mid_stream(
    kube: Kube, router: RouterProcess, http: httpx.AsyncClient
) -> None:
    await put_model(kube, "gone", warm(f"http://127.0.0.1:{free_port()}"))
    await seen_by_router(http, "gone", "Warm")
    stream = await sse(http, CHAT, chat("gone"))
    # Refused before a byte: tried again (the pod may be restarting), saying so, then told.
    assert stream.statuses[0] == "routing" and stream.statuses[-1] == "error"
    assert stream.statuses.count("generating") == 3  # three tries
    went_away = [e.data for e in stream.of("loading")]
    assert any(isinstance(d, dict) and "engine went away" in d["message"] for d in went_away)
    error = stream.of("error")[0].data
    assert isinstance(error, dict) and "connection refused" in error["message"]
    assert stream.events[-1].data == "[DONE]"
    with pytest.raises(openai.APIError, match="connection refused"):
        for _ in sdk(router).chat.completions.create(
            model="gone", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass


async def test_engine_dying_mid_stream(
    kube: Kube, router: RouterProcess, http: httpx.AsyncClient, start_engine: StartEngine
) -> None:
    engine = failing_engine(start_engine, "crash-after-tokens", 3)
    await put_model(kube, "dying", warm(engine.url))
    await seen_by_router(http, "dying", "Warm")
    stream = await sse(http, CHAT, chat("dying"))
    assert stream.statuses == ["routing", "generating", "error"]
    assert len(stream.text.split()) == 3
    error = stream.of("error")[0].data
    assert isinstance(error, dict) and error["error"]["code"] in ("upstream_died",)
    assert stream.events[-1].data == "[DONE]"


async def test_engine_stalling_mid_stream(
    kube: Kube, router: RouterProcess, http: httpx.AsyncClient, start_engine: StartEngine
) -> None:
    engine = failing_engine(start_engine, "stall-after-tokens", 2)
    await put_model(kube, "stalling", warm(engine.url))
    await seen_by_router(http, "stalling", "Warm")
    with pytest.raises(openai.APIError, match="sent nothing for 1 s"):
        for _ in sdk(router).chat.completions.create(
            model="stalling", messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass


async def test_keep_alive_comments_fill_silence(
    homelab: HomelabThread, kube: Kube, tmp_path_factory: pytest.TempPathFactory
) -> None:
    quiet = RouterProcess(
        homelab,
        tmp_path_factory.mktemp("quiet"),
        keepalive_interval=0.2,
        loading_interval=5,
        hold_timeout_min=1.5,
        hold_timeout_factor=0,
    ).start()
    try:
        await put_model(kube, "hushed", LOADING_FOREVER)
        async with httpx.AsyncClient(base_url=quiet.url, timeout=30) as client:
            await seen_by_router(client, "hushed", "Loading")
            stream = await sse(client, CHAT, chat("hushed"))
        assert stream.comments >= 3
        assert stream.headers["cache-control"] == "no-cache" and stream.headers["x-accel-buffering"] == "no"
        assert stream.events[-1].data == "[DONE]"
    finally:
        quiet.stop()


async def test_api_keys(
    homelab: HomelabThread, kube: Kube, tmp_path_factory: pytest.TempPathFactory, start_engine: StartEngine
) -> None:
    engine = start_engine("--load-seconds", "0", "--tokens-per-second", "500")
    engine.wait_healthy()
    await put_model(kube, "guarded", warm(engine.url))
    keyed = RouterProcess(homelab, tmp_path_factory.mktemp("keyed"), api_keys="sekrit,other").start()
    try:
        async with httpx.AsyncClient(base_url=keyed.url, timeout=30) as client:
            assert (await client.post(CHAT, json=chat("guarded"))).status_code == 401
            wrong = await client.post(CHAT, json=chat("guarded"), headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
            assert (await client.get("/v1/models")).status_code == 401
            assert (await client.get("/healthz")).status_code == 200
        ok = sdk(keyed, "other").chat.completions.create(
            model="guarded", messages=[{"role": "user", "content": "x"}]
        )
        assert ok.choices[0].message.content
        assert "sekrit" not in keyed.logs()
    finally:
        keyed.stop()


async def test_the_registry_resumes_after_the_api_server_restarts() -> None:
    port = free_port()
    import os
    import tempfile

    import yaml
    from kubernetes_asyncio import client as k8s
    from kubernetes_asyncio import config

    from hearth_sim.apiserver import HearthApiServer
    from hearth_sim.homelab import REPO_ROOT, kubeconfig, manifests

    server = HearthApiServer()
    crd = manifests([REPO_ROOT / "deploy" / "crds"])[0]
    async with serve_api(port=port, server=server) as (_, url):
        async with httpx.AsyncClient(base_url=url) as h:
            (
                await h.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=crd)
            ).raise_for_status()
            (
                await h.post(
                    "/apis/hearth.dev/v1alpha1/namespaces/default/modeldeployments", json=md("phoenix")
                )
            )
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(kubeconfig(url), f)
        await config.load_kube_config(config_file=f.name)
        os.unlink(f.name)
        api = k8s.ApiClient()
        registry = Registry(api)
        watching = asyncio.create_task(registry.run())
        await asyncio.wait_for(registry.ready.wait(), 5)
        assert registry.resolve("phoenix") is not None
    # The API server is down; a status change happens meanwhile (as if written before it went).
    rtype = server.store.resolve("hearth.dev", "v1alpha1", "modeldeployments")
    server.store.patch(
        rtype,
        "default",
        "phoenix",
        "application/merge-patch+json",
        {"status": {"phase": "Loading"}},
        "status",
    )
    async with serve_api(port=port, server=server):

        async def loading() -> bool:
            entry = registry.resolve("phoenix")
            return (
                entry is not None
                and entry.md.status.phase is not None
                and entry.md.status.phase.value == "Loading"
            )

        await eventually(loading, deadline=15, what="the registry to resume and see Loading")
    watching.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # a watch that failed meanwhile still fails
        await watching
    await api.close()

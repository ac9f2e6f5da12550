"""The router end to end: real operator, real engine pods, official OpenAI SDK as the client."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube
from hearth_sim.nodes import NodeSpec

from .conftest import eventually, start_homelab
from .operator_helpers import (
    MD_API,
    WAKE,
    status,
    wait_phase,
)
from .router_helpers import CHAT, RouterProcess, chat, cold_model, sse

MDS = "modeldeployments"
MESSAGES = [{"role": "user", "content": "why is it cold?"}]


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomelabThread]:
    """GPUs shared by time-slicing (8 slots each), so several small models are warm at once."""
    nodes = [
        NodeSpec(name="gpu-3070", gpu_class="rtx3070", vram_gib=8, gpus=8),
        NodeSpec(name="gpu-3090", gpu_class="rtx3090", vram_gib=24, gpus=8),
    ]
    thread = start_homelab(tmp_path_factory.mktemp("homelab"), nodes)
    yield thread
    thread.stop()


cold = cold_model


def sdk(router: RouterProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{router.url}/v1", api_key="unused", max_retries=0)


def async_sdk(router: RouterProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{router.url}/v1", api_key="unused", max_retries=0)


async def test_stock_sdk_streams_read_the_full_text_from_cold_models(
    kube: Kube, router: RouterProcess
) -> None:
    # Three cold models, one per client style, each woken by the request itself.
    for name in ("sync", "asyncsdk", "helper"):
        await cold(kube, router, name, load=1.0, time_scale=0.2)
    stream = await asyncio.to_thread(
        lambda: list(sdk(router).chat.completions.create(model="sync", messages=MESSAGES, stream=True))
    )  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(text.split()) == 32
    assert {c.model for c in stream} == {"sync"} and len({c.id for c in stream}) == 1

    client = async_sdk(router)
    chunks = [
        c
        async for c in await client.chat.completions.create(
            model="asyncsdk",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
        )
    ]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    async with client.chat.completions.stream(model="helper", messages=MESSAGES) as s:  # type: ignore[arg-type]
        final = await s.get_final_completion()
    assert final.choices[0].message.content == text
    assert final.choices[0].finish_reason == "stop"
    await client.close()


async def test_the_raw_stream_is_in_design_order_and_counts_down(kube: Kube, router: RouterProcess) -> None:
    # Real time: a 3 s load whose prior estimate is about right, so there is a countdown to see.
    await cold(kube, router, "countdown", load=3.0, time_scale=1.0, warmup={"expectedSeconds": 4})
    async with httpx.AsyncClient(timeout=60) as http:
        stream = await sse(http, f"{router.url}{CHAT}", chat("countdown"))
    statuses = stream.statuses
    assert statuses[0] == "routing" and statuses[-1] == "done"
    assert statuses.count("generating") == 1
    loading = stream.of("loading")
    assert len(loading) >= 2 and statuses[1 : len(loading) + 1] == ["loading"] * len(loading)
    etas = [e.data["estimated_time"] for e in loading]  # type: ignore[index]
    assert etas == sorted(etas, reverse=True), etas
    # How close the countdown comes to the true remaining time is measured by `make bench`.
    # Every event is a chat.completion.chunk; status events have an empty delta; the tokens
    # come between generating and done; done carries the whole text.
    for e in stream.events[:-1]:
        assert isinstance(e.data, dict)
        assert e.data["object"] == "chat.completion.chunk" and e.data["model"] == "countdown"
        if "status" in e.data:
            assert e.data["choices"][0]["delta"] == {}
            assert e.data["event"]["type"] == "status"
            assert e.data["event"]["data"]["done"] is (e.data["status"] == "done")
    assert stream.events[-1].data == "[DONE]"
    done = stream.of("done")[0].data
    assert isinstance(done, dict)
    assert done["content"] == stream.text and done["choices"][0]["finish_reason"] == "stop"
    assert done["usage"]["completion_tokens"] == 32 and done["backend"] in ("3070", "3090")
    assert done["event"]["data"]["description"].startswith("Warmed up in ")
    assert "Warming up countdown on 30" in loading[-1].data["message"]  # type: ignore[index]


async def test_two_hundred_concurrent_requests_wake_once_and_all_complete(
    homelab: HomelabThread, kube: Kube, router: RouterProcess
) -> None:
    await cold(kube, router, "crowd", load=1.0, time_scale=0.5, concurrency=16)
    api = homelab.homelab.api
    assert api is not None
    before = len(api.requests)
    limits = httpx.Limits(max_connections=250)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        streams = await asyncio.gather(*(sse(http, f"{router.url}{CHAT}", chat("crowd")) for _ in range(200)))
    assert all(s.statuses[-1] == "done" for s in streams), {
        str(s.events[-2].data)[:300] for s in streams if s.statuses[-1] != "done"
    }
    assert {len(s.text.split()) for s in streams} == {32}
    assert any("queued" in s.statuses for s in streams), "16 slots for 200 requests: some must queue"
    positions = [e.data["queue_position"] for s in streams for e in s.of("queued")]  # type: ignore[index]
    assert min(positions) == 1
    wakes = [r for r in api.requests[before:] if r.method == "PATCH" and r.name == "crowd" and WAKE in r.text]
    assert len(wakes) == 1, f"{len(wakes)} wakes for one cold period"


async def test_non_streaming_completions_and_embeddings_hold_then_answer_plainly(
    kube: Kube, router: RouterProcess
) -> None:
    await cold(kube, router, "plain", load=0.5, time_scale=0.5, aliases=["plainly"])
    client = async_sdk(router)
    whole = await client.chat.completions.create(model="plainly", messages=MESSAGES)  # type: ignore[arg-type]
    assert whole.model == "plainly" and whole.choices[0].message.content
    text = await client.completions.create(model="plain", prompt="hello", max_tokens=4, stream=True)
    pieces = [c async for c in text]
    assert "".join(c.choices[0].text for c in pieces if c.choices) and all(
        c.object == "text_completion" for c in pieces
    )
    usage = [
        c.usage
        async for c in await client.chat.completions.create(  # type: ignore[call-overload]
            model="plain", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        if c.usage
    ]
    assert usage and usage[-1].completion_tokens == 32
    emb = await client.embeddings.create(model="plain", input=["a", "b"])
    assert len(emb.data) == 2 and emb.model == "plain"
    await client.close()


async def test_a_client_that_hangs_up_closes_the_engine_request(kube: Kube, router: RouterProcess) -> None:
    await cold(kube, router, "hangup", load=0.2, time_scale=1.0, tokens_per_second=4)
    async with httpx.AsyncClient(timeout=60) as http:
        async with http.stream("POST", f"{router.url}{CHAT}", json=chat("hangup")) as response:
            async for line in response.aiter_lines():
                if '"content":"' in line and '"status"' not in line and '"content":""' not in line:
                    break  # the first token: hang up now
        engine = (await status(kube, "hangup"))["endpoints"][0]

        async def closed() -> bool:
            stats = (await http.get(f"{engine}/stats")).json()
            return stats["active_streams"] == 0 and stats["streams_closed"] == 1

        # Closed long before the answer would have ended by itself (how soon after: `make bench`).
        await eventually(closed, deadline=5, interval=0.02, what="the engine to see the hang-up")


async def test_cancel_by_id_ends_the_stream_and_the_engine_request(kube: Kube, router: RouterProcess) -> None:
    await cold(kube, router, "cancelme", load=0.2, time_scale=1.0, tokens_per_second=4)
    async with httpx.AsyncClient(timeout=60) as http:
        events: list[dict[str, Any] | str] = []
        async with http.stream("POST", f"{router.url}{CHAT}", json=chat("cancelme")) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
                first = events[0]
                assert isinstance(first, dict)
                if isinstance(events[-1], dict) and events[-1].get("status") == "generating":
                    r = await http.post(f"{router.url}/v1/requests/{first['id']}/cancel")
                    assert r.json() == {"id": first["id"], "cancelled": True}
        last_event = events[-2]
        assert isinstance(last_event, dict) and last_event["status"] == "error"
        assert last_event["error"]["code"] == "cancelled" and events[-1] == "[DONE]"
        engine = (await status(kube, "cancelme"))["endpoints"][0]

        async def closed() -> bool:
            return bool((await http.get(f"{engine}/stats")).json()["active_streams"] == 0)

        await eventually(closed, deadline=1.0, what="the engine request to close")
        missing = await http.post(f"{router.url}/v1/requests/{first['id']}/cancel")
        assert missing.status_code == 404


async def test_activity_is_recorded_and_throttled(
    homelab: HomelabThread, kube: Kube, router: RouterProcess
) -> None:
    await cold(kube, router, "busy", load=0.2, time_scale=0.5)
    api = homelab.homelab.api
    assert api is not None
    before = len(api.requests)
    client = async_sdk(router)
    for _ in range(5):
        await client.chat.completions.create(model="busy", messages=MESSAGES)  # type: ignore[arg-type]
    await client.close()
    md = await kube.get(MD_API, MDS, "default", "busy")
    assert "hearth.dev/last-activity" in md["metadata"]["annotations"]
    patches = [
        r
        for r in api.requests[before:]
        if r.method == "PATCH" and r.name == "busy" and "last-activity" in r.text
    ]
    assert len(patches) == 1, "one activity patch per 30 s per model, however many requests"


async def test_models_api_and_its_feed(kube: Kube, router: RouterProcess) -> None:
    await cold(kube, router, "listed", load=0.5, time_scale=0.5, aliases=["alias1"])
    async with httpx.AsyncClient(timeout=30) as http:
        models = (await http.get(f"{router.url}/v1/models")).json()["data"]
        ids = {m["id"]: m for m in models}
        assert ids["listed"]["phase"] == "Cold" and ids["alias1"]["gpu"] == "any"
        assert ids["listed"]["estimated_time"] == 5
        detail = (await http.get(f"{router.url}/api/models")).json()["models"]
        mine = next(m for m in detail if m["model"] == "listed")
        assert mine["router"] == {"waiters": 0, "queued": 0, "in_flight": 0}
        assert mine["status"]["phase"] == "Cold" and mine["aliases"] == ["alias1"]

        phases: list[str] = []

        async def follow() -> None:
            async with http.stream("GET", f"{router.url}/api/models/events") as feed:
                async for line in feed.aiter_lines():
                    if line.startswith("data: "):
                        view = json.loads(line[6:])
                        if view.get("model") == "listed":
                            phases.append(view["status"]["phase"])
                            if phases[-1] == "Warm":
                                return

        follower = asyncio.create_task(follow())
        await async_sdk(router).chat.completions.create(model="listed", messages=MESSAGES)  # type: ignore[arg-type]
        await asyncio.wait_for(follower, 10)
        assert phases[0] == "Cold" and "Loading" in phases and phases[-1] == "Warm"
        metrics = (await http.get(f"{router.url}/metrics")).text
        assert 'hearth_router_requests_total{model="listed",outcome="ok"} 1.0' in metrics
        assert 'hearth_router_cold_start_wait_seconds_count{model="listed"} 1.0' in metrics


async def test_auto_prefers_a_warm_model(kube: Kube, router: RouterProcess) -> None:
    await cold(kube, router, "sleepy", load=0.5, time_scale=0.5)
    await cold(kube, router, "awake", load=0.2, time_scale=0.5)
    client = async_sdk(router)
    await client.chat.completions.create(model="awake", messages=MESSAGES)  # type: ignore[arg-type]
    reply = await client.chat.completions.create(model="auto", messages=MESSAGES)  # type: ignore[arg-type]
    await client.close()
    assert reply.model == "auto"
    assert (await status(kube, "sleepy"))["phase"] == "Cold", "auto must not wake a model when one is warm"


NODE_CLIENT = Path(__file__).with_name("node_client")


@pytest.mark.skipif(
    shutil.which("node") is None or not (NODE_CLIENT / "node_modules" / "openai").exists(),
    reason="node or openai-node is not installed (make test installs it where npm exists)",
)
async def test_openai_node_reads_the_full_text_from_a_cold_model(kube: Kube, router: RouterProcess) -> None:
    await cold(kube, router, "nodejs", load=1.0, time_scale=0.2)
    done = await asyncio.to_thread(
        subprocess.run,
        ["node", str(NODE_CLIENT / "stream.mjs"), f"{router.url}/v1", "nodejs"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["text"].split()) == 32 and result["chunks"] > 32


async def test_a_long_answer_outlives_a_short_idle_timeout(kube: Kube, router: RouterProcess) -> None:
    # A 4 s answer (32 tokens at 8/s) from a model that idles out after 2 s: the router's
    # activity must keep it up until the last token, then let it go.
    await cold(kube, router, "chatty", load=0.2, time_scale=1.0, idle=2, tokens_per_second=8)
    async with httpx.AsyncClient(timeout=60) as http:
        stream = await sse(http, f"{router.url}{CHAT}", chat("chatty"))
    assert stream.statuses[-1] == "done" and len(stream.text.split()) == 32
    assert (await status(kube, "chatty"))["phase"] == "Warm"
    await wait_phase(kube, "chatty", "Cold", deadline=10)

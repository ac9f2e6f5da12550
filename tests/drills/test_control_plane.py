"""Drills 3 and 4: the control plane goes away under load. The API server restarts (down for
two seconds, back on its port with its state) and, separately, cuts every watch; the operator is
killed mid-load; the router is killed with streams in flight. Streams in flight finish, waiting
clients are answered, changes made meanwhile are seen, and nothing is woken twice or left awake."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube

from ..cluster.conftest import eventually
from ..cluster.operator_helpers import MD_API, WAKE, OperatorProcess, sim_md, status, wait_phase
from ..cluster.router_helpers import CHAT, RouterProcess, Stream, chat, sse
from .record import Drill

T = TypeVar("T")
MDS = "modeldeployments"
api_drill = Drill(
    "03-api-server-restart",
    "API server restarted, watches cut",
    "the API server down 2 s and back on its port with its state, under load; every watch "
    "connection cut (three times)",
    checked="streams in flight finish; waiting clients answered; a change made meanwhile seen; "
    "one wake per load",
)
restart_drill = Drill(
    "04-operator-router-restart",
    "Operator and router killed",
    "SIGKILL of the operator mid-load with clients waiting; SIGKILL of the router with streams in flight",
    checked="the load completes, samples kept, no orphan; clients of the dead router get a closed stream, "
    "not a hang; the new router starts at 0 waiters and lets idle models sleep",
)


def on_lab(homelab: HomelabThread, work: Awaitable[T]) -> asyncio.Future[T]:
    """Run a coroutine on the homelab's own event loop (its thread), awaitable from here."""
    return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(work, homelab.loop))  # type: ignore[arg-type]


def finished(stream: Stream) -> bool:
    return stream.statuses[-1:] == ["done"] and stream.events[-1].data == "[DONE]"


def wakes(homelab: HomelabThread, name: str, since: int) -> int:
    api = homelab.homelab.api
    assert api is not None
    return sum(1 for r in api.requests[since:] if r.method == "PATCH" and r.name == name and WAKE in r.text)


async def test_an_api_server_restart_under_load(
    kube: Kube, router: RouterProcess, homelab: HomelabThread
) -> None:
    lab = homelab.homelab
    assert lab.api is not None and lab.listener is not None
    slow = sim_md("talker", load=0.2, time_scale=1.0, tokens_per_second=8, scaling={"minReplicas": 1})
    await kube.create(MD_API, MDS, "default", slow)
    await kube.create(MD_API, MDS, "default", sim_md("sleeper", load=2, time_scale=1.0))
    await kube.create(MD_API, MDS, "default", sim_md("ghost", load=0.2))
    for name, phase in (("talker", "Warm"), ("sleeper", "Cold"), ("ghost", "Cold")):
        await wait_phase(kube, name, phase)
    before = len(lab.api.requests)
    async with httpx.AsyncClient(timeout=60) as http:
        talking = asyncio.create_task(sse(http, f"{router.url}{CHAT}", chat("talker")))
        waiting = [asyncio.create_task(sse(http, f"{router.url}{CHAT}", chat("sleeper"))) for _ in range(3)]
        await eventually(lambda: _wake_sent(homelab, "sleeper", before), what="the wake for sleeper")

        async def outage() -> None:
            await lab.listener.stop()  # type: ignore[union-attr]
            # A change made while it is down (as if written just before it went): a model deleted.
            assert lab.api is not None
            lab.api.store.delete(lab.api.store.resolve("hearth.dev", "v1alpha1", MDS), "default", "ghost")
            await asyncio.sleep(2.0)
            await lab.listener.start()  # type: ignore[union-attr]

        await on_lab(homelab, outage())
        streams = await asyncio.wait_for(asyncio.gather(talking, *waiting), 60)
    api_drill.times += 1
    for stream in streams:
        api_drill.streams_lost += not finished(stream)
    assert all(finished(s) for s in streams), [s.statuses for s in streams]

    async def ghost_gone() -> bool:
        async with httpx.AsyncClient() as http:
            listed = [m["id"] for m in (await http.get(f"{router.url}/v1/models")).json()["data"]]
        services = [s["metadata"]["name"] for s in (await kube.list("v1", "services", "default"))["items"]]
        return "ghost" not in listed and "ghost" not in services

    await eventually(ghost_gone, deadline=30, what="the deletion made during the outage to be seen")
    assert wakes(homelab, "sleeper", before) == 1, "one wake, whatever the outage"

    # Every watch cut, three times; each time a new model appears, and both the operator (its
    # phase) and the router (its list) see it, and the warm model still answers.
    for round_ in range(3):
        await on_lab(homelab, _end_watches(homelab))
        name = f"after-cut-{round_}"
        await kube.create(MD_API, MDS, "default", sim_md(name, load=0.2))
        await wait_phase(kube, name, "Cold")

        async def listed(name: str = name) -> bool:
            async with httpx.AsyncClient() as http:
                models = (await http.get(f"{router.url}/v1/models")).json()["data"]
            return any(m["id"] == name for m in models)

        await eventually(listed, what=f"the router to list {name} after the cut")
        async with httpx.AsyncClient(timeout=60) as http:
            stream = await sse(http, f"{router.url}{CHAT}", chat("talker"))
        api_drill.streams_lost += not finished(stream)
        api_drill.times += 1
    api_drill.save()


async def _end_watches(homelab: HomelabThread) -> None:
    assert homelab.homelab.api is not None
    homelab.homelab.api.end_watches()


async def _wake_sent(homelab: HomelabThread, name: str, since: int) -> bool:
    return wakes(homelab, name, since) >= 1


async def test_the_operator_killed_mid_load_with_clients_waiting(
    kube: Kube, router: RouterProcess, operator: OperatorProcess, homelab: HomelabThread
) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("survivor", load=3, time_scale=1.0))
    await wait_phase(kube, "survivor", "Cold")
    before = len(homelab.homelab.api.requests) if homelab.homelab.api else 0
    async with httpx.AsyncClient(timeout=60) as http:
        waiting = [asyncio.create_task(sse(http, f"{router.url}{CHAT}", chat("survivor"))) for _ in range(3)]
        loading = await wait_phase(kube, "survivor", "Loading")
        operator.kill()
        operator.start()
        streams = await asyncio.wait_for(asyncio.gather(*waiting), 60)
    restart_drill.times += 1
    for stream in streams:
        restart_drill.streams_lost += not finished(stream)
    assert all(finished(s) for s in streams), [s.statuses for s in streams]
    warm = await status(kube, "survivor")
    assert warm["phase"] == "Warm" and loading["loadingSince"]
    # The one load, measured once and from its start (the new operator kept the start time).
    assert len(warm["warmup"]["samples"]) == 1 and warm["warmup"]["lastSeconds"] >= 3.0
    assert wakes(homelab, "survivor", before) == 1
    deployments = (await kube.list("apps/v1", "deployments", "default"))["items"]
    owned = [d for d in deployments if d["metadata"]["name"] == "survivor"]
    assert len(owned) == 1 and owned[0]["metadata"]["ownerReferences"][0]["name"] == "survivor"
    restart_drill.save()


async def test_the_router_killed_with_streams_in_flight(
    kube: Kube, router: RouterProcess, homelab: HomelabThread
) -> None:
    slow = sim_md("chatty", load=0.2, time_scale=1.0, tokens_per_second=4, scaling={"minReplicas": 1})
    await kube.create(MD_API, MDS, "default", slow)
    await kube.create(MD_API, MDS, "default", sim_md("drowsy", load=4, time_scale=1.0, idle=2))
    await wait_phase(kube, "chatty", "Warm")
    await wait_phase(kube, "drowsy", "Cold")
    async with httpx.AsyncClient(timeout=30) as http:
        inflight = [_stream_or_error(http, f"{router.url}{CHAT}", chat("chatty")) for _ in range(3)]
        inflight += [_stream_or_error(http, f"{router.url}{CHAT}", chat("drowsy")) for _ in range(3)]
        tasks = [asyncio.create_task(t) for t in inflight]
        await wait_phase(kube, "drowsy", "Loading")
        assert router.proc is not None
        router.proc.kill()  # SIGKILL: no goodbye to anyone
        outcomes = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    restart_drill.times += 1
    # Each client learns at once that its stream is gone: an error from its HTTP library.
    assert all(outcome == "closed" for outcome in outcomes), outcomes
    router.start()
    async with httpx.AsyncClient() as http:
        views = (await http.get(f"{router.url}/api/models")).json()["models"]
    assert all(v["router"]["waiters"] == 0 and v["router"]["in_flight"] == 0 for v in views), views
    # No wake outlives its clients: the model that was loading for them sleeps after its idle time.
    await wait_phase(kube, "drowsy", "Cold", deadline=60)
    async with httpx.AsyncClient(timeout=60) as http:
        assert finished(await sse(http, f"{router.url}{CHAT}", chat("chatty")))
    restart_drill.save()


async def _stream_or_error(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> str:
    try:
        stream = await sse(http, url, body)
    except (httpx.RemoteProtocolError, httpx.ReadError):
        return "closed"
    return "done" if finished(stream) else f"ended: {stream.statuses}"

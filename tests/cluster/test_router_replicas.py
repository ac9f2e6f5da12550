"""Two router replicas sharing one store (a real Redis): to clients they are one router — one
line per model with places counted across both, one admission limit, an engine never given
more than its concurrency, one wake per cold period — and without the store each goes on alone,
saying so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube
from hearth_sim.nodes import NodeSpec
from hearth_sim.store import StoreServer

from .conftest import eventually, start_homelab
from .operator_helpers import MD_API, WAKE, OperatorProcess, delete_all_models
from .router_helpers import CHAT, RouterProcess, Stream, chat, cold_model, replica_pair, sse

LEASE = 1.0  # seconds: short, so a lost replica's slots come back quickly in these tests


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomelabThread]:
    nodes = [NodeSpec(name="gpu-3090", gpu_class="rtx3090", vram_gib=24, gpus=8)]
    thread = start_homelab(tmp_path_factory.mktemp("homelab"), nodes)
    yield thread
    thread.stop()


@pytest.fixture
def pair(
    homelab: HomelabThread, store: StoreServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[RouterProcess, RouterProcess]]:
    settings = {"store_url": store.url, "store_lease_seconds": LEASE, "store_timeout": 0.5}
    settings.update(getattr(request, "param", {}))
    with replica_pair(homelab, tmp_path, **settings) as pair:
        yield pair


@pytest.fixture
async def kube(homelab: HomelabThread, operator: OperatorProcess) -> AsyncIterator[Kube]:
    """The operator's, not one router's: each test starts its own pair."""
    client = Kube(homelab.homelab.url)
    yield client
    await delete_all_models(client)
    await client.close()


@pytest.mark.parametrize("pair", [{"max_waiters": 400}], indirect=True)  # 300 may wait, in all
async def test_three_hundred_streams_through_two_replicas_wait_in_one_line(
    homelab: HomelabThread, kube: Kube, pair: tuple[RouterProcess, RouterProcess]
) -> None:
    a, b = pair
    await cold_model(kube, a, "crowd", b, load=1.0, time_scale=0.5, concurrency=4, tokens_per_second=400)
    api = homelab.homelab.api
    assert api is not None
    before = len(api.requests)
    limits = httpx.Limits(max_connections=320)
    async with httpx.AsyncClient(timeout=180, limits=limits) as http:
        streams: list[Stream] = await asyncio.gather(
            *(sse(http, f"{(a, b)[i % 2].url}{CHAT}", chat("crowd")) for i in range(300))
        )
        md = await kube.get(MD_API, "modeldeployments", "default", "crowd")
        (endpoint,) = md["status"]["endpoints"]
        stats = (await http.get(f"{endpoint}/stats")).json()
    assert all(s.status == 200 and s.statuses[-1] == "done" for s in streams), {
        str(s.body or s.events[-2].data)[:300] for s in streams if s.status != 200 or s.statuses[-1] != "done"
    }
    # One line: places count both replicas' requests (each holds 150, so a split line stops there).
    firsts = [s.of("queued")[0].data["queue_position"] for s in streams if s.of("queued")]  # type: ignore[index]
    assert max(firsts) > 150, f"the longest wait was told place {max(firsts)}: two lines, not one"
    assert len(set(firsts)) > 150, "places are told once each as the line fills, not twice"
    # One engine, four slots: never more than four answers at once, whichever replica sent them.
    assert stats["peak_streams"] <= 4 and stats["streams_closed"] == 300, stats
    wakes = [r for r in api.requests[before:] if r.method == "PATCH" and r.name == "crowd" and WAKE in r.text]
    assert len(wakes) == 1, f"{len(wakes)} wakes from two replicas for one cold period"


@pytest.mark.parametrize("pair", [{"max_waiters": 10}], indirect=True)
async def test_the_waiter_limit_counts_both_replicas(
    kube: Kube, pair: tuple[RouterProcess, RouterProcess]
) -> None:
    a, b = pair
    await cold_model(kube, a, "limited", b, load=1.0, time_scale=0.5)
    async with httpx.AsyncClient(timeout=60) as http:
        streams = await asyncio.gather(
            *(sse(http, f"{(a, b)[i % 2].url}{CHAT}", chat("limited")) for i in range(14))
        )
    turned_away = [s for s in streams if s.status == 429]
    # Seven at each replica, ten in all may wait: with a limit per replica all fourteen would.
    assert len(turned_away) == 4, [s.status for s in streams]
    for refused in turned_away:
        assert refused.body["error"]["code"] == "too_many_waiters"
        assert int(refused.headers["retry-after"]) >= 1
    assert all(s.statuses[-1] == "done" for s in streams if s.status == 200)


async def test_without_the_store_each_replica_serves_alone_and_says_so(
    kube: Kube, store: StoreServer, pair: tuple[RouterProcess, RouterProcess]
) -> None:
    a, _ = pair
    await cold_model(kube, a, "alone", load=0.2, time_scale=0.5, concurrency=1, tokens_per_second=50)
    async with httpx.AsyncClient(timeout=60) as http:
        assert "degraded" not in (await http.get(f"{a.url}/readyz")).json()
        store.kill()
        # Two requests at one replica, one slot: the second queues, at this replica only.
        streams = await asyncio.gather(*(sse(http, f"{a.url}{CHAT}", chat("alone")) for _ in range(2)))
        assert [s.statuses[-1] for s in streams] == ["done", "done"]
        queued = [e.data["message"] for s in streams for e in s.of("queued")]  # type: ignore[index]
        assert queued and all("at this router replica" in m for m in queued), queued
        ready = await http.get(f"{a.url}/readyz")
        assert ready.status_code == 200 and "shared store is unreachable" in ready.json()["degraded"]
        assert "hearth_router_store_up 0.0" in (await http.get(f"{a.url}/metrics")).text
        store.start()

        async def sharing() -> bool:
            return "degraded" not in (await http.get(f"{a.url}/readyz")).json()

        await eventually(sharing, deadline=30 * LEASE, what="the replica sharing the line again")
        assert "hearth_router_store_up 1.0" in (await http.get(f"{a.url}/metrics")).text

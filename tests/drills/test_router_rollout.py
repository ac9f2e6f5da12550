"""Drill 10: `helm upgrade` rolls the router while 50 streams are in flight — some waiting for a
cold model to load, some queued for a busy one, some generating. The chart as a user installs it
(two router replicas sharing the chart's Valkey, RollingUpdate with maxUnavailable 0, an
Ingress); the stock httpx client reaches it through the homelab's ingress controller. Every
stream the old replicas held ends with its reply: none is cut, none hangs; requests sent while
the routers roll are answered by the replicas that are still Ready."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import ApiError, Kube

from ..cluster.conftest import eventually, off_the_loop
from ..cluster.install_helpers import (
    HELM_DEADLINE,
    HELM_WAIT,
    HOST,
    INGRESS_VALUES,
    KUBECTL,
    ROOT,
    install_chart,
    ready_pod,
    start_ingress_homelab,
)
from ..cluster.operator_helpers import MD_API, sim_md, wait_phase
from ..cluster.router_helpers import CHAT, chat
from .record import Drill
from .streams import Followed, follow

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
NAMESPACE = "drill"
DRAIN = 90  # seconds each old replica may drain: far more than the work below needs
HEADERS = {"Host": HOST}
VALUES: dict[str, Any] = {
    "router": {"replicas": 2, "drainSeconds": DRAIN, "settings": {"maxWaiters": 200}},
    "ingress": INGRESS_VALUES,
}
STREAM_DEADLINE = 150.0  # a stream not ended by then hung
rolled = Drill(
    "10-router-rolled",
    "Router rolled by `helm upgrade`",
    "helm upgrade that rolls both router replicas while 50 streams are in flight "
    "(loading a cold model, queued for a busy one, generating)",
    checked="every stream ends with its reply and [DONE]; requests sent during the roll answered; "
    "old replicas exit once drained",
)


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomelabThread]:
    thread = start_ingress_homelab(tmp_path_factory.mktemp("homelab"))
    yield thread
    thread.stop()


@pytest.fixture
async def kube(homelab: HomelabThread) -> AsyncIterator[Kube]:
    client = Kube(homelab.homelab.url)
    yield client
    await client.close()


async def router_pods(kube: Kube) -> list[dict[str, Any]]:
    selector = "app.kubernetes.io/component=router"
    return list((await kube.list("v1", "pods", NAMESPACE, selector))["items"])


@pytest.mark.timeout(420)  # an install, an upgrade, an uninstall, each bounded; ~40 s of streams
async def test_helm_upgrade_rolls_the_router_and_no_stream_is_lost(
    homelab: HomelabThread, kube: Kube
) -> None:
    from helm_python import Config

    helm = Config(kubeconfig_path=str(homelab.homelab.kubeconfig_path), namespace=NAMESPACE)
    chart = str(ROOT / "charts" / "hearth")
    try:
        await install_chart(helm, kube, NAMESPACE, VALUES)
        await ready_pod(kube, "store", NAMESPACE)
        before = {p["metadata"]["uid"] for p in await router_pods(kube)}
        assert len(before) == 2, before
        kubelet = homelab.homelab.kubelet
        assert kubelet is not None
        # Both replicas share the chart's Valkey: neither says it is on its own.
        for pod in await router_pods(kube):
            async with httpx.AsyncClient(timeout=10) as http:
                ready = (await http.get(f"http://{pod['status']['podIP']}:8012/readyz")).json()
            assert "degraded" not in ready, ready

        # busy: warm, four slots, each answer 4 s (32 tokens at 8/s); sleepy: cold, 15 s to load.
        busy = sim_md("busy", load=0.2, time_scale=1.0, tokens_per_second=8, concurrency=4)
        sleepy = sim_md("sleepy", load=15, time_scale=1.0, tokens_per_second=8)
        for md in (busy, sleepy):
            await kube.create(MD_API, "modeldeployments", "default", md)
            await wait_phase(kube, md["metadata"]["name"], "Cold")
        limits = httpx.Limits(max_connections=100)
        base = homelab.homelab.ingress_url
        async with httpx.AsyncClient(base_url=base, timeout=STREAM_DEADLINE, limits=limits) as http:

            async def listed() -> bool:
                r = await http.get("/v1/models", headers=HEADERS)
                return r.status_code == 200 and {"busy", "sleepy"} <= {m["id"] for m in r.json()["data"]}

            await eventually(listed, deadline=30, what="both models listed through the ingress")
            warmed = Followed()
            await follow(http, CHAT, chat("busy", max_tokens=1), warmed, HEADERS)
            assert warmed.whole, warmed
            streams = [Followed() for _ in range(50)]
            tasks = [
                asyncio.create_task(follow(http, CHAT, chat("sleepy" if i % 5 == 0 else "busy"), s, HEADERS))
                for i, s in enumerate(streams)
            ]

            async def all_three_stages() -> bool:
                return {"loading", "queued", "generating"} <= {s.now for s in streams}

            await eventually(all_three_stages, deadline=30, interval=0.05, what="all three stages at once")
            open_at_roll = sum(not s.ended for s in streams)
            rolling = asyncio.create_task(
                off_the_loop(
                    lambda: helm.upgrade(
                        chart,
                        "hearth",
                        {**VALUES, "router": {**VALUES["router"], "settings": {"maxWaiters": 201}}},
                        wait="watcher",
                        timeout=HELM_WAIT,
                    ),
                    HELM_DEADLINE,
                    "helm upgrade",
                )
            )
            # New chats while the routers roll: each reaches a replica that is still Ready.
            during = []
            while not rolling.done():
                during.append(late := Followed())
                tasks.append(
                    asyncio.create_task(follow(http, CHAT, chat("busy", max_tokens=2), late, HEADERS))
                )
                await asyncio.wait({rolling}, timeout=0.5)
            await rolling
            # Gone from the API at once (the homelab deletes pods without a grace period), an old
            # replica still runs while it drains: its runner is the kubelet's until it exits.
            draining = before & set(kubelet.runners)
            open_after_roll = sum(not s.ended for s in streams)
            _, hung = await asyncio.wait(tasks, timeout=STREAM_DEADLINE)
            for task in hung:
                task.cancel()

        rolled.times += 1
        rolled.hung = len(hung)
        everything = [*streams, *during]
        rolled.streams_lost = sum(s.ended and not s.whole for s in everything)
        rolled.server_errors = sum(s.http_status >= 500 for s in everything)
        bad = [(s.http_status, s.statuses[-3:], s.last[:200]) for s in everything if not s.whole]
        assert not bad, f"{len(bad)} of {len(everything)} streams not whole: {bad[:5]}"
        assert open_at_roll == 50 and during, (open_at_roll, len(during))
        # The roll replaced both replicas; the old ones were still draining streams when Helm
        # was done, and each exits once its streams have ended (not at its 90 s deadline).
        assert open_after_roll > 0 and draining, "nothing was in flight on the old replicas"
        after = {p["metadata"]["uid"] for p in await router_pods(kube)}

        async def old_ones_gone() -> bool:
            return not before & set(kubelet.runners)

        await eventually(old_ones_gone, deadline=30, what="the drained replicas to exit")
        assert len(after - before) == 2, after
    finally:
        for name in ("busy", "sleepy"):
            with contextlib.suppress(ApiError):
                await kube.delete(MD_API, "modeldeployments", "default", name)
        await off_the_loop(
            lambda: helm.uninstall("hearth", wait="watcher", timeout=HELM_WAIT),
            HELM_DEADLINE,
            "helm uninstall",
        )
        helm.close()


def test_the_rollout_drill_is_recorded() -> None:
    rolled.save()

"""The chart with two router replicas, as a user installs it (`router.replicas: 2`: the chart's
Valkey, an Ingress), and 300 streams from the stock OpenAI SDK through the ingress at one cold
model. To the clients the replicas are one router: one wake; places in line that count the
whole line, whichever replica a request reached; queue ETAs that never rise without saying
why; an engine never given more than its concurrency; one admission limit for both (the rest
get 429 with Retry-After)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube

from .conftest import eventually
from .install_helpers import (
    HELM_DEADLINE,
    HELM_WAIT,
    HOST,
    INGRESS_VALUES,
    KUBECTL,
    ROOT,
    bounded,
    kubectl,
    ready_pod,
    start_ingress_homelab,
)
from .operator_helpers import MD_API, WAKE, delete_all_models, sim_md, wait_phase
from .router_helpers import eta_rose_unexplained

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")
NAMESPACE = "replicas"
STREAMS = 300
MAX_WAITERS = 250  # for both replicas together: 50 of the 300 are turned away
CONCURRENCY = 4
VALUES: dict[str, Any] = {
    "router": {"replicas": 2, "settings": {"maxWaiters": MAX_WAITERS}},
    "ingress": INGRESS_VALUES,
}


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomelabThread]:
    thread = start_ingress_homelab(tmp_path_factory.mktemp("homelab"))
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def release(homelab: HomelabThread) -> Iterator[None]:
    """The chart installed with two router replicas (and so the chart's Valkey) for the module."""
    from helm_python import Config

    helm = Config(kubeconfig_path=str(homelab.homelab.kubeconfig_path), namespace=NAMESPACE)
    chart = str(ROOT / "charts" / "hearth")
    try:
        try:
            bounded(
                lambda: helm.install(
                    chart, "hearth", VALUES, create_namespace=True, wait="watcher", timeout=HELM_WAIT
                ),
                HELM_DEADLINE,
                "helm install",
            )
        except Exception as exc:  # what the pods say
            raise AssertionError(f"{exc}\n{kubectl(homelab, 'get', 'pods', '-n', NAMESPACE)}") from exc
        yield
        bounded(
            lambda: helm.uninstall("hearth", wait="watcher", timeout=HELM_WAIT),
            HELM_DEADLINE,
            "helm uninstall",
        )
    finally:
        helm.close()


@pytest.fixture
async def kube(homelab: HomelabThread, release: None) -> AsyncIterator[Kube]:
    client = Kube(homelab.homelab.url)
    yield client
    await delete_all_models(client)
    await client.close()


@dataclass
class Seen:
    """What one SDK stream showed: each status chunk's extra fields, the text, or a refusal."""

    statuses: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""
    refused: openai.RateLimitError | None = None

    def of(self, status: str) -> list[dict[str, Any]]:
        return [s for s in self.statuses if s.get("status") == status]


async def one_stream(client: openai.AsyncOpenAI, model: str) -> Seen:
    seen = Seen()
    try:
        stream = await client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "why is it cold?"}],
            stream=True,
        )
        async for chunk in stream:
            extra = chunk.model_extra or {}
            if "status" in extra:
                seen.statuses.append(extra)
            elif chunk.choices:
                seen.text += chunk.choices[0].delta.content or ""
    except openai.RateLimitError as exc:
        seen.refused = exc
    return seen


def sdk(homelab: HomelabThread, http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    """The stock SDK, reaching Hearth as a user does: the ingress, by its host name."""
    return openai.AsyncOpenAI(
        base_url=f"{homelab.homelab.ingress_url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"Host": HOST},
        http_client=http,
    )


async def listed_by_both(client: openai.AsyncOpenAI, model: str) -> None:
    async def both() -> bool:
        # The ingress takes turns: two answers in a row, one from each replica.
        found = [await client.models.list() for _ in range(2)]
        return all(any(m.id == model for m in page.data) for page in found)

    await eventually(both, deadline=30, what=f"both replicas to list {model}")


def firsts(seen: list[Seen]) -> list[int]:
    """The first place in line each stream that queued was told."""
    return [s.of("queued")[0]["queue_position"] for s in seen if s.of("queued")]


@pytest.mark.timeout(300)
async def test_three_hundred_sdk_streams_through_the_ingress_see_two_replicas_as_one(
    homelab: HomelabThread, kube: Kube
) -> None:
    await ready_pod(kube, "store", NAMESPACE)
    # A 5 s load: all 300 are sent (through one ingress, on this test's own event loop) while
    # the model is still cold, so the line is as long as the limit lets it be.
    md = sim_md("crowd", load=5.0, time_scale=1.0, concurrency=CONCURRENCY, tokens_per_second=400)
    await kube.create(MD_API, "modeldeployments", "default", md)
    await wait_phase(kube, "crowd", "Cold")
    async with httpx.AsyncClient(timeout=180, limits=httpx.Limits(max_connections=STREAMS + 20)) as http:
        client = sdk(homelab, http)
        await listed_by_both(client, "crowd")
        api = homelab.homelab.api
        assert api is not None
        before = len(api.requests)
        seen = await asyncio.gather(*(one_stream(client, "crowd") for _ in range(STREAMS)))
        endpoint = (await wait_phase(kube, "crowd", "Warm"))["endpoints"][0]
        stats = (await http.get(f"{endpoint}/stats")).json()

    served = [s for s in seen if s.refused is None]
    refused = [s.refused for s in seen if s.refused is not None]
    # One limit for both replicas: with one each, all 300 (150 at each) would have been let in.
    assert len(refused) == STREAMS - MAX_WAITERS, f"{len(refused)} turned away"
    for exc in refused:
        assert exc.code == "too_many_waiters" and int(exc.response.headers["retry-after"]) >= 1
    assert all(s.statuses[-1]["status"] == "done" and len(s.text.split()) == 32 for s in served)
    # One line: the first place each queued stream was told counts both replicas' requests.
    places = firsts(served)
    # (Each replica held 150 requests at most: a line per replica stops there.)
    assert max(places) > STREAMS / 2, f"the longest wait was told place {max(places)}: two lines"
    assert len(set(places)) > len(served) / 2, "places are told once each as the line fills"
    alone = [q["message"] for s in served for q in s.of("queued") if "at this router replica" in q["message"]]
    assert not alone, f"a replica lost the store under the burst: {alone[:3]}"
    assert not [s for s in served if eta_rose_unexplained(s.of("queued"))], "an ETA rose unexplained"
    # One engine, four slots: never more at once, whichever replica sent them.
    assert stats["peak_streams"] <= CONCURRENCY and stats["streams_closed"] >= len(served), stats
    wakes = [r for r in api.requests[before:] if r.method == "PATCH" and r.name == "crowd" and WAKE in r.text]
    assert len(wakes) == 1, f"{len(wakes)} wakes from two replicas for one cold period"


async def test_a_store_pod_replaced_on_a_new_address_is_found_again_through_its_service(
    homelab: HomelabThread, kube: Kube
) -> None:
    """The routers know the store by its Service's name: when its pod is replaced (a node
    drain, an eviction) the new one, on a new address and empty, is reached again and the
    replicas share one line with it."""
    old = await ready_pod(kube, "store", NAMESPACE)
    await kube.delete("v1", "pods", NAMESPACE, old["metadata"]["name"])
    new = await ready_pod(kube, "store", NAMESPACE)
    assert new["status"]["podIP"] != old["status"]["podIP"]
    # One slot and a 2 s load: all 40 wait, and a line per replica would stop at place 20.
    md = sim_md("after", load=2.0, time_scale=1.0, concurrency=1, tokens_per_second=400)
    await kube.create(MD_API, "modeldeployments", "default", md)
    await wait_phase(kube, "after", "Cold")
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=60)) as http:
        client = sdk(homelab, http)
        await listed_by_both(client, "after")
        seen = await asyncio.gather(*(one_stream(client, "after") for _ in range(40)))
    assert all(s.refused is None and s.statuses[-1]["status"] == "done" for s in seen)
    alone = [q["message"] for s in seen for q in s.of("queued") if "at this router replica" in q["message"]]
    assert not alone, f"a replica did not find the new store: {alone[:3]}"
    assert max(firsts(seen)) > 20, sorted(firsts(seen))

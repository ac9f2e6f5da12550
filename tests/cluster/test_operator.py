"""The operator as a real process against the simulated homelab (real kopf, real engine processes)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from hearth_api.times import parse_time
from hearth_sim.homelab import HomelabThread, sim_examples
from hearth_sim.kube import Kube

from .conftest import eventually
from .operator_helpers import (
    MD_API,
    OperatorProcess,
    children_gone,
    delete_all_models,
    now_stamp,
    recording,
    sim_md,
    status,
    wait_phase,
    wake,
)

MDS = "modeldeployments"


@pytest.fixture
async def kube(homelab: HomelabThread, operator: OperatorProcess) -> AsyncIterator[Kube]:
    client = Kube(homelab.homelab.url)
    yield client
    await delete_all_models(client)

    async def no_pods() -> bool:
        return not (await client.list("v1", "pods", "default"))["items"]

    await eventually(no_pods, what="every pod to go")
    await client.close()
    assert operator.proc is not None and operator.proc.poll() is None, operator.logs()[-3000:]


async def test_wake_evict_and_place_on_the_3070(kube: Kube) -> None:
    async with recording(kube) as rec:
        for doc in sim_examples():
            await kube.create(MD_API, MDS, "default", doc)
        for name in ("small", "medium", "big"):
            s = await wait_phase(kube, name, "Cold")
            assert s["warmup"]["estimateSeconds"] == {"small": 5, "medium": 15, "big": 30}[name]

        await wake(kube, "medium")
        warm = await wait_phase(kube, "medium", "Warm")
        assert (await rec.until("medium", "Warm"))[-3:] == ["Cold", "Loading", "Warm"]
        assert (warm["node"], warm["gpuClass"]) == ("gpu-3090", "rtx3090")
        client = openai.AsyncOpenAI(base_url=f"{warm['endpoints'][0]}/v1", api_key="x", max_retries=0)
        reply = await client.chat.completions.create(
            model="medium", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content
        await client.close()

        await wake(kube, "big")
        big = await wait_phase(kube, "big", "Warm")
        assert big["node"] == "gpu-3090"
        assert "Evicting" in await rec.until("medium", "Cold")
        medium = await status(kube, "medium")
        assert medium["message"] == "Unloaded to free the GPU for big; a request wakes it"
        assert medium.get("endpoints") in (None, [])

        await wake(kube, "small")
        small = await wait_phase(kube, "small", "Warm")
        assert small["node"] == "gpu-3070"
        assert rec.seen("big")[-1] == "Warm", "placing small on the 3070 must not evict anything"
        assert (await status(kube, "medium"))["phase"] == "Cold", "an evicted model must not bounce back"


async def test_metrics(kube: Kube, operator: OperatorProcess) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("counted", load=0))
    await wake(kube, "counted")
    await wait_phase(kube, "counted", "Warm")
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{operator.metrics_port}/metrics")).text
    assert 'hearth_warmup_seconds_count{gpu_class="rtx3070",model="counted"} 1.0' in text
    assert 'hearth_models{phase="Warm"}' in text
    assert "hearth_evictions_total" in text and "hearth_reconcile_errors_total 0.0" in text


async def test_warmup_estimate_is_learned_and_survives_restarts(
    kube: Kube, operator: OperatorProcess
) -> None:
    # Real time (time scale 1): a 2 s load with ± 10 % jitter, idle after 1 s so it cools again.
    await kube.create(MD_API, MDS, "default", sim_md("timed", load=2.0, jitter=0.1, idle=1, time_scale=1.0))
    await wait_phase(kube, "timed", "Cold")
    for _ in range(3):
        await wake(kube, "timed")
        await wait_phase(kube, "timed", "Warm", deadline=15)
        await wait_phase(kube, "timed", "Cold", deadline=15)
    s = await status(kube, "timed")
    samples = s["warmup"]["samples"]
    assert len(samples) == 3 and s["warmup"]["byGpuClass"] == {"rtx3070": samples}
    # Each load is measured from the wake, so it cannot be shorter than the engine's own load.
    assert all(sample >= 2.0 * 0.9 for sample in samples), samples
    assert s["warmup"]["estimateSeconds"] == round(statistics.median(samples), 1)
    assert s["warmup"]["lastSeconds"] == samples[-1]

    operator.stop()
    operator.start()
    # A wake sent while no operator runs is gone after the 1 s idle timeout unless renewed (the
    # router renews it while a request waits); here the operator is up before the wake.
    await operator.reconciling()
    await wake(kube, "timed")
    await wait_phase(kube, "timed", "Warm", deadline=20)
    after = await status(kube, "timed")
    assert after["warmup"]["samples"][:3] == s["warmup"]["samples"]
    assert len(after["warmup"]["samples"]) == 4


async def test_operator_killed_mid_load_finishes_the_load(kube: Kube, operator: OperatorProcess) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("survivor", load=3.0, time_scale=1.0))
    await wait_phase(kube, "survivor", "Cold")
    await wake(kube, "survivor")
    loading = await wait_phase(kube, "survivor", "Loading")
    operator.kill()
    operator.start()
    warm = await wait_phase(kube, "survivor", "Warm", deadline=20)
    # Measured from the original load's start: the restarted operator kept it.
    ready = next(c for c in warm["conditions"] if c["type"] == "Ready")
    since = parse_time(loading["loadingSince"])
    turned_ready = parse_time(ready["lastTransitionTime"])
    assert since is not None and turned_ready is not None
    assert abs((turned_ready - since).total_seconds() - warm["warmup"]["lastSeconds"]) <= 0.01
    assert warm["endpoints"] and warm["readyReplicas"] == 1


async def test_idle_models_scale_to_zero_and_pinned_ones_stay(kube: Kube) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("brief", idle=1, load=0))
    await kube.create(
        MD_API, MDS, "default", sim_md("pinned", load=0, gpu_class="rtx3090", scaling={"minReplicas": 1})
    )
    await wait_phase(kube, "pinned", "Warm")
    await wait_phase(kube, "brief", "Cold")
    await wake(kube, "brief")
    await wait_phase(kube, "brief", "Warm")
    cold = await wait_phase(kube, "brief", "Cold", deadline=10)
    assert cold["message"] == "Scaled to zero after 1 s without requests"
    assert (await status(kube, "pinned"))["phase"] == "Warm"


async def test_bad_specs_fail_or_wait_with_the_field_named_and_others_run(kube: Kube) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("huge", vram=40))
    await kube.create(MD_API, MDS, "default", sim_md("first"))
    await wait_phase(kube, "first", "Cold")
    dup = sim_md("second")
    dup["spec"]["model"] = "first"
    await kube.create(MD_API, MDS, "default", dup)
    # Passes the CRD schema (the API server enforces it) but not the types' own rules.
    broken = sim_md("broken", scaling={"minReplicas": 2, "maxReplicas": 1})
    await kube.create(MD_API, MDS, "default", broken)

    await wake(kube, "huge")
    huge = await wait_phase(kube, "huge", "Unschedulable")
    assert "gpu.vramGiB=40" in huge["message"]
    second = await wait_phase(kube, "second", "Failed")
    assert second["message"] == "spec.model: 'first' is already served by modeldeployment/first"
    bad = await wait_phase(kube, "broken", "Failed")
    assert bad["message"] == (
        "invalid spec: spec.scaling: Value error, scaling.minReplicas must not exceed scaling.maxReplicas"
    )

    async def events_for(name: str) -> list[dict[str, Any]]:
        items = (
            await kube._call(
                "GET",
                "/api/v1/namespaces/default/events",
                params={"fieldSelector": f"involvedObject.name={name}"},
            )
        )["items"]
        return list(items)

    async def warned() -> bool:
        reasons = {e["reason"] for n in ("huge", "second", "broken") for e in await events_for(n)}
        return {"Unschedulable", "Failed", "InvalidSpec"} <= reasons

    await eventually(warned, what="Warning events for the bad specs")

    await wake(kube, "first")
    assert (await wait_phase(kube, "first", "Warm"))["endpoints"]


async def test_a_busy_gpu_makes_a_model_wait_and_it_is_placed_when_freed(kube: Kube) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("holder", load=0, vram=20, gpu_class="rtx3090"))
    await wake(kube, "holder")
    await wait_phase(kube, "holder", "Warm")
    # Requests in flight (recent activity) make it busy: it is not evicted for a newcomer.
    await kube.patch(
        MD_API,
        MDS,
        "default",
        "holder",
        {"metadata": {"annotations": {"hearth.dev/last-activity": now_stamp()}}},
    )
    await kube.create(MD_API, MDS, "default", sim_md("waiter", load=0, vram=14, gpu_class="rtx3090"))
    await wake(kube, "waiter")
    waiting = await wait_phase(kube, "waiter", "Unschedulable")
    assert waiting["message"].startswith("rtx3090 on gpu-3090 holds holder (20 GiB, active ")
    await kube.delete(MD_API, MDS, "default", "holder")
    placed = await wait_phase(kube, "waiter", "Warm")
    assert placed["node"] == "gpu-3090"


async def test_a_spec_change_rolls_the_deployment(kube: Kube) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("rolling", load=0))
    await wake(kube, "rolling")
    before = await wait_phase(kube, "rolling", "Warm")
    assert before["observedGeneration"] == 1
    env = sim_md("rolling", load=0, tokens_per_second=99)["spec"]["env"]
    await kube.patch(MD_API, MDS, "default", "rolling", {"spec": {"env": env}})

    async def rolled() -> dict[str, Any] | None:
        s = await status(kube, "rolling")
        fresh = s.get("observedGeneration") == 2 and s.get("phase") == "Warm"
        return s if fresh and s["endpoints"] != before["endpoints"] else None

    after = await eventually(rolled, what="the new replica to be Warm")
    deployment = await kube.get("apps/v1", "deployments", "default", "rolling")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "HEARTH_SIM_TOKENS_PER_SECOND", "value": "99"} in container["env"]
    pods = (await kube.list("v1", "pods", "default", "hearth.dev/model-deployment=rolling"))["items"]
    assert [p["status"]["podIP"] for p in pods] == [after["endpoints"][0].split("//")[1].split(":")[0]]


async def test_a_name_clash_that_appears_later_stops_the_newer_model(kube: Kube) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("elder", load=0))
    await kube.create(MD_API, MDS, "default", sim_md("younger", load=0))
    await wake(kube, "younger")
    await wait_phase(kube, "younger", "Warm")
    await kube.patch(MD_API, MDS, "default", "younger", {"spec": {"aliases": ["elder"]}})
    failed = await wait_phase(kube, "younger", "Failed")
    assert failed["message"] == "spec.aliases: 'elder' is already served by modeldeployment/elder"

    async def stopped() -> bool:
        return not (await kube.list("v1", "pods", "default", "hearth.dev/model-deployment=younger"))["items"]

    await eventually(stopped, what="the clashing model's replica to stop")
    assert (await status(kube, "elder"))["phase"] == "Cold"


async def test_a_port_change_follows_through_to_the_service(kube: Kube) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("porty", load=0))
    await wake(kube, "porty")
    await wait_phase(kube, "porty", "Warm")
    await kube.patch(MD_API, MDS, "default", "porty", {"spec": {"port": 8001}})

    async def moved() -> dict[str, Any] | None:
        s = await status(kube, "porty")
        ok = s.get("phase") == "Warm" and s.get("endpoints") and s["endpoints"][0].endswith(":8001")
        return s if ok else None

    await eventually(moved, what="the replica to serve on the new port")
    service = await kube.get("v1", "services", "default", "porty")
    assert [p["port"] for p in service["spec"]["ports"]] == [8001]


async def test_deleting_the_cr_deletes_its_children(kube: Kube) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("doomed", load=0))
    await wake(kube, "doomed")
    await wait_phase(kube, "doomed", "Warm")
    assert await kube.get("v1", "services", "default", "doomed")
    await kube.delete(MD_API, MDS, "default", "doomed")

    await eventually(lambda: children_gone(kube, "doomed"), what="the children to go")


async def test_two_hundred_models_at_once(kube: Kube) -> None:
    began = time.monotonic()
    await asyncio.gather(
        *(kube.create(MD_API, MDS, "default", sim_md(f"m{i:03d}", vram=1)) for i in range(200))
    )

    async def all_cold() -> bool:
        items = (await kube.list(MD_API, MDS, "default"))["items"]
        return sum(1 for i in items if (i.get("status") or {}).get("phase") == "Cold") == 200

    await eventually(all_cold, deadline=90, interval=0.2, what="200 models to reach Cold")
    settled = time.monotonic() - began
    await wake(kube, "m123")
    woken = time.monotonic()
    await wait_phase(kube, "m123", "Warm")
    print(
        f"\n200 ModelDeployments reached Cold in {settled:.1f} s; a wake then took "
        f"{time.monotonic() - woken:.2f} s to Warm"
    )


async def test_spec_changes_land_while_the_deployment_status_churns(kube: Kube) -> None:
    """The kubelet (or a Deployment controller) writes the Deployment's status all the time;
    the operator's writes to the spec must neither race with it nor be lost."""
    await kube.create(MD_API, MDS, "default", sim_md("churned", load=0))
    await wake(kube, "churned")
    await wait_phase(kube, "churned", "Warm")
    stop = asyncio.Event()
    writes = 0

    async def churn() -> None:
        nonlocal writes
        while not stop.is_set():
            await kube.patch(
                "apps/v1",
                "deployments",
                "default",
                "churned",
                {
                    "status": {
                        "observedGeneration": writes,
                        "conditions": [{"type": "Churn", "status": "True"}],
                    }
                },
                sub="status",
            )
            writes += 1

    churner = asyncio.create_task(churn())

    async def churning() -> bool:
        return writes >= 3

    try:
        await eventually(churning, what="the Deployment's status to churn")
        for tps in (101, 102, 103):
            await kube.patch(
                MD_API,
                MDS,
                "default",
                "churned",
                {"spec": {"env": [{"name": "HEARTH_SIM_TOKENS_PER_SECOND", "value": str(tps)}]}},
            )

        async def landed() -> bool:
            deployment = await kube.get("apps/v1", "deployments", "default", "churned")
            env = deployment["spec"]["template"]["spec"]["containers"][0].get("env") or []
            return {"name": "HEARTH_SIM_TOKENS_PER_SECOND", "value": "103"} in env

        await eventually(landed, what="the last spec change to reach the Deployment")
    finally:
        stop.set()
        await churner
    # The operator fixture's teardown checks its log: no 409 Conflict, no traceback.

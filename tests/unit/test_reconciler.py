"""The reconciler in-process: plain indexes, a writer that records what it is asked to write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from hearth_api.times import rfc3339
from hearth_operator.metrics import OperatorMetrics
from hearth_operator.placement import GpuNode
from hearth_operator.reconciler import Reconciler
from hearth_operator.world import Indexes


class RecordingWriter:
    def __init__(self) -> None:
        self.deployments: dict[str, dict[str, Any]] = {}
        self.services: dict[str, dict[str, Any]] = {}
        self.statuses: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str, str, str]] = []
        self.scaled: list[tuple[str, int]] = []
        self.refuse_deployments = 0  # how many writes to fail with 409 first
        self.jobs: dict[str, dict[str, Any]] = {}

    async def ensure_service(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None:
        self.services[manifest["metadata"]["name"]] = manifest

    async def ensure_deployment(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None:
        if self.refuse_deployments:
            self.refuse_deployments -= 1
            raise ApiException(status=409, reason="Conflict")
        assert owner["uid"] and owner["controller"] is True
        self.deployments[manifest["metadata"]["name"]] = manifest

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.scaled.append((name, replicas))

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.statuses[name] = status

    async def event(self, body: dict[str, Any], kind: str, reason: str, message: str) -> None:
        self.events.append((body["metadata"]["name"], kind, reason, message))

    async def ensure_job(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None:
        self.jobs[manifest["metadata"]["name"]] = manifest

    async def delete_job(self, namespace: str, name: str) -> None:
        self.jobs.pop(name, None)


def body(name: str, vram: int, *, woken: bool = True, **spec: Any) -> dict[str, Any]:
    annotations = {"hearth.dev/wake-requested-at": rfc3339(datetime.now(UTC))} if woken else {}
    return {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": "2026-11-28T00:00:00Z",
            "annotations": annotations,
        },
        "spec": {"model": name, "engine": "sim", "gpu": {"class": "rtx3090", "vramGiB": vram}, **spec},
    }


def ready_pod(name: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"{name}-1"},
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]},
    }


@pytest.fixture
def world() -> tuple[Reconciler, RecordingWriter, Indexes]:
    writer = RecordingWriter()
    indexes = Indexes(nodes={"gpu-3090": {GpuNode("gpu-3090", "rtx3090", 24)}}, models={}, pods={})
    return Reconciler(writer=writer, metrics=OperatorMetrics(), indexes=indexes), writer, indexes


def put(indexes: Indexes, doc: dict[str, Any], status: dict[str, Any] | None = None) -> None:
    if status is not None:
        doc = {**doc, "status": status}
    indexes.models[f"default/{doc['metadata']['name']}"] = [doc]


async def test_a_woken_model_is_placed_then_turns_warm_when_its_pod_is_ready(world: Any) -> None:
    reconciler, writer, indexes = world
    put(indexes, body("medium", 14))
    await reconciler.reconcile("default/medium")
    deployment = writer.deployments["medium"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "gpu-3090"}
    assert writer.statuses["medium"]["phase"] == "Loading" and "medium" in writer.services

    put(indexes, body("medium", 14), writer.statuses["medium"])
    indexes.pods["default/medium"] = [ready_pod("medium", "127.10.0.9")]
    await reconciler.reconcile("default/medium")
    warm = writer.statuses["medium"]
    assert warm["phase"] == "Warm" and warm["endpoints"] == ["http://127.10.0.9:8000"]
    assert len(warm["warmup"]["samples"]) == 1
    assert [e[2] for e in writer.events] == ["Loading", "Warm"]
    reconciler.queue.close()


async def test_a_newcomer_evicts_an_idle_model_and_names_it_in_status(world: Any) -> None:
    reconciler, writer, indexes = world
    idle = body("big", 20, woken=False)
    put(indexes, idle, {"phase": "Warm", "node": "gpu-3090", "gpuClass": "rtx3090"})
    indexes.pods["default/big"] = [ready_pod("big", "127.10.0.8")]
    put(indexes, body("medium", 14))
    await reconciler.reconcile("default/medium")
    waiting = writer.statuses["medium"]
    assert waiting["phase"] == "Loading" and waiting.get("node") is None
    assert waiting["evicting"] == {"node": "gpu-3090", "models": ["default/big"]}
    assert writer.deployments["medium"]["spec"]["replicas"] == 0
    assert reconciler.evictions == {"default/big": "medium"}
    await reconciler.queue.idle()  # the victim was kicked
    assert (
        writer.statuses["big"]["phase"] == "Evicting" and writer.deployments["big"]["spec"]["replicas"] == 0
    )
    reconciler.queue.close()


async def test_a_spec_the_types_refuse_fails_naming_the_field_and_stops_what_runs(world: Any) -> None:
    reconciler, writer, indexes = world
    put(indexes, body("broken", 14, scaling={"minReplicas": 2, "maxReplicas": 1}))
    await reconciler.reconcile("default/broken")
    status = writer.statuses["broken"]
    assert status["phase"] == "Failed" and "scaling.minReplicas must not exceed" in status["message"]
    assert writer.scaled == [("broken", 0)] and "broken" not in writer.deployments
    assert writer.events[-1][1:3] == ("Warning", "InvalidSpec")


async def test_a_refused_write_is_retried_with_back_off_and_counted(world: Any) -> None:
    _, writer, indexes = world
    reconciler = Reconciler(writer=writer, metrics=OperatorMetrics(), indexes=indexes, retry_backoff=0.01)
    writer.refuse_deployments = 2
    put(indexes, body("medium", 14))
    reconciler.kick("default/medium")
    await reconciler.queue.idle()
    assert writer.deployments["medium"]["spec"]["replicas"] == 1
    assert reconciler.metrics.registry.get_sample_value("hearth_reconcile_errors_total") == 2
    assert reconciler.queue.failures == {}
    reconciler.queue.close()


async def test_a_download_that_outlasted_the_idle_timeout_is_placed_the_moment_it_ends(world: Any) -> None:
    """Woken an hour ago (idle timeout 5 min), downloading since: when the Job completes, the
    same reconcile records the cache and places the model — no Cold or Unschedulable between."""
    from hearth_operator.downloads import WeightsCache

    reconciler, writer, indexes = world
    reconciler.cache = WeightsCache(claim="hearth-weights", image="hearth:test")
    uri = "https://host.lan/m.gguf"
    hour_ago = rfc3339(datetime.now(UTC) - timedelta(hours=1))
    doc = body("medium", 14, modelSource={"uri": uri}, scaling={"idleTimeoutSeconds": 300})
    doc["metadata"]["annotations"] = {"hearth.dev/wake-requested-at": hour_ago}
    put(indexes, doc, {"phase": "Downloading", "download": {"bytes": 10, "totalBytes": 10}})
    indexes.jobs = {
        "default/medium": [
            {
                "metadata": {
                    "name": "medium-weights",
                    "annotations": {"hearth.dev/source": uri},
                    "creationTimestamp": rfc3339(datetime.now(UTC) - timedelta(minutes=59)),
                },
                "status": {"conditions": [{"type": "Complete", "status": "True"}]},
            }
        ]
    }
    await reconciler.reconcile("default/medium")
    status = writer.statuses["medium"]
    assert status["phase"] == "Loading" and status["node"] == "gpu-3090", status
    assert status["cache"]["requested"] and status["cache"]["size"] == "10 B"
    assert writer.deployments["medium"]["spec"]["replicas"] == 1
    reconciler.queue.close()

"""The kubelet simulator: Deployments become Pods, Pods become real processes on loopback."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from hearth_api.model_deployment import HEARTH_IMAGE
from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import ApiError, Kube

from .conftest import eventually

NS = "default"


@pytest.fixture
async def kube(homelab: HomelabThread) -> AsyncIterator[Kube]:
    client = Kube(homelab.homelab.url)
    yield client
    for d in (await client.list("apps/v1", "deployments", NS))["items"]:
        await client.delete("apps/v1", "deployments", NS, d["metadata"]["name"])
    await client.close()


def deployment(
    name: str,
    *,
    node: str = "gpu-3090",
    gpus: int = 1,
    image: str = HEARTH_IMAGE,
    args: list[str] | None = None,
    replicas: int = 1,
    load: str = "2",
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "containers": [
                        {
                            "name": "engine",
                            "image": image,
                            "command": ["hearth-sim-engine"],
                            "args": args or ["--model", name],
                            "env": [{"name": "HEARTH_SIM_LOAD_SECONDS", "value": load}],
                            "ports": [{"containerPort": 8000}],
                            "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}},
                            "resources": {"limits": {"nvidia.com/gpu": gpus}} if gpus else {},
                        }
                    ],
                },
            },
        },
    }


async def pods_of(kube: Kube, app: str) -> list[dict[str, Any]]:
    return list((await kube.list("v1", "pods", NS, label_selector=f"app={app}"))["items"])


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", [])
    )


async def ready_pod(kube: Kube, app: str, deadline: float = 15) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        return next((p for p in await pods_of(kube, app) if ready(p)), None)

    return await eventually(check, deadline, what=f"a Ready pod of {app}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


async def test_gpu_nodes_are_registered(kube: Kube) -> None:
    nodes = {n["metadata"]["name"]: n for n in (await kube.list("v1", "nodes"))["items"]}
    assert set(nodes) == {"gpu-3070", "gpu-3090", "cpu-0"}
    labels = nodes["gpu-3090"]["metadata"]["labels"]
    assert labels["hearth.dev/gpu-class"] == "rtx3090"
    assert labels["hearth.dev/gpu-vram-gib"] == "24"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-GeForce-RTX-3090"
    assert nodes["gpu-3070"]["status"]["capacity"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in nodes["cpu-0"]["status"]["capacity"]


async def test_deployment_becomes_a_ready_pod_that_serves_and_scale_to_zero_kills_it(
    homelab: HomelabThread, kube: Kube
) -> None:
    await kube.create("apps/v1", "deployments", NS, deployment("medium"))
    pod = await ready_pod(kube, "medium")
    assert pod["spec"]["nodeName"] == "gpu-3090"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    ip = pod["status"]["podIP"]
    assert ip.startswith("127.")
    client = openai.AsyncOpenAI(base_url=f"http://{ip}:8000/v1", api_key="x", max_retries=0)
    reply = await client.chat.completions.create(model="medium", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content
    await client.close()

    async def deployment_ready() -> bool:
        d = await kube.get("apps/v1", "deployments", NS, "medium")
        return d.get("status", {}).get("readyReplicas") == 1 and d["status"]["observedGeneration"] == 1

    await eventually(deployment_ready, what="deployment status")

    assert homelab.homelab.kubelet is not None
    pid = homelab.homelab.kubelet.pids[pod["metadata"]["uid"]]
    assert alive(pid)
    await kube.patch("apps/v1", "deployments", NS, "medium", {"spec": {"replicas": 0}})

    async def gone() -> bool:
        return not await pods_of(kube, "medium") and not alive(pid)

    await eventually(gone, what="the pod and its process to go")


async def test_a_foreign_image_stays_pending_with_an_event(kube: Kube) -> None:
    await kube.create("apps/v1", "deployments", NS, deployment("vllm", image="vllm/vllm-openai:v0.11.0"))

    async def pulled_failed() -> dict[str, Any] | None:
        pods = await pods_of(kube, "vllm")
        statuses = pods[0].get("status", {}).get("containerStatuses", []) if pods else []
        return (
            pods[0]
            if statuses and statuses[0]["state"].get("waiting", {}).get("reason") == "ErrImagePull"
            else None
        )

    pod = await eventually(pulled_failed, what="ErrImagePull")
    events = (
        await kube._call(
            "GET",
            f"/api/v1/namespaces/{NS}/events",
            params={"fieldSelector": f"involvedObject.name={pod['metadata']['name']}"},
        )
    )["items"]
    failed = [e for e in events if e["reason"] == "Failed"]
    assert failed and "cannot run in the simulated homelab" in failed[0]["message"]


async def test_a_crashing_engine_restarts_with_back_off(kube: Kube) -> None:
    await kube.create(
        "apps/v1",
        "deployments",
        NS,
        deployment("crashy", args=["--model", "crashy", "--failure", "fail-load"], gpus=0, node="cpu-0"),
    )

    async def restarted() -> dict[str, Any] | None:
        pods = await pods_of(kube, "crashy")
        cs = pods[0].get("status", {}).get("containerStatuses", []) if pods else []
        return cs[0] if cs and cs[0]["restartCount"] >= 2 else None

    status = await eventually(restarted, deadline=20, what="two restarts")
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert not status["ready"]


async def test_kubectl_logs_shows_what_the_container_printed(homelab: HomelabThread, kube: Kube) -> None:
    await kube.create(
        "apps/v1",
        "deployments",
        NS,
        deployment("talky", args=["--model", "talky", "--failure", "fail-load"], gpus=0, node="cpu-0"),
    )

    async def logged() -> str | None:
        pods = await pods_of(kube, "talky")
        if not pods:
            return None
        r = await kube.http.get(f"/api/v1/namespaces/{NS}/pods/{pods[0]['metadata']['name']}/log")
        return r.text if "out of memory (simulated)" in r.text else None

    text = await eventually(logged, what="the engine's output in the pod log")
    assert "hearth-sim-engine: serving talky" in text


async def test_gpus_are_not_overcommitted(kube: Kube) -> None:
    await kube.create("apps/v1", "deployments", NS, deployment("first", node="gpu-3070"))
    await ready_pod(kube, "first")
    await kube.create("apps/v1", "deployments", NS, deployment("second", node="gpu-3070"))

    async def unschedulable() -> dict[str, Any] | None:
        pods = await pods_of(kube, "second")
        conds = pods[0].get("status", {}).get("conditions", []) if pods else []
        return next((c for c in conds if c["type"] == "PodScheduled" and c["status"] == "False"), None)

    cond = await eventually(unschedulable, what="FailedScheduling")
    assert "Insufficient nvidia.com/gpu" in cond["message"]
    # Freeing the GPU lets the waiting pod run.
    await kube.delete("apps/v1", "deployments", NS, "first")
    await ready_pod(kube, "second")


async def test_a_deleted_pod_is_replaced_and_its_process_killed(homelab: HomelabThread, kube: Kube) -> None:
    await kube.create("apps/v1", "deployments", NS, deployment("phoenix", gpus=0, node="cpu-0", load="0"))
    pod = await ready_pod(kube, "phoenix")
    assert homelab.homelab.kubelet is not None
    pid = homelab.homelab.kubelet.pids[pod["metadata"]["uid"]]
    await kube.delete("v1", "pods", NS, pod["metadata"]["name"])

    async def replaced() -> dict[str, Any] | None:
        fresh = [p for p in await pods_of(kube, "phoenix") if p["metadata"]["uid"] != pod["metadata"]["uid"]]
        return fresh[0] if fresh and ready(fresh[0]) and not alive(pid) else None

    new = await eventually(replaced, what="a replacement pod")
    assert new["status"]["podIP"] != ""
    with pytest.raises(ApiError):
        await kube.get("v1", "pods", NS, pod["metadata"]["name"])


async def test_spec_change_rolls_the_pod(kube: Kube) -> None:
    await kube.create("apps/v1", "deployments", NS, deployment("roll", gpus=0, node="cpu-0", load="0"))
    first = await ready_pod(kube, "roll")
    patch = deployment("roll", gpus=0, node="cpu-0", load="0", args=["--model", "roll-v2"])
    await kube.patch("apps/v1", "deployments", NS, "roll", {"spec": patch["spec"]})

    async def rolled() -> dict[str, Any] | None:
        pods = [p for p in await pods_of(kube, "roll") if ready(p)]
        return pods[0] if pods and pods[0]["metadata"]["uid"] != first["metadata"]["uid"] else None

    pod = await eventually(rolled, what="the rolled pod")
    async with httpx.AsyncClient() as http:
        models = (await http.get(f"http://{pod['status']['podIP']}:8000/v1/models")).json()
    assert models["data"][0]["id"] == "roll-v2"


async def test_a_pod_whose_port_is_taken_on_every_address_fails_with_an_event(kube: Kube) -> None:
    """A program on 0.0.0.0:P takes P on every loopback address (a demo's operator did, and the
    kubelet looked for a free address forever): the pod gets an Event saying why, at once."""
    with socket.create_server(("0.0.0.0", 0)) as squatter:
        port = squatter.getsockname()[1]
        manifest = deployment("squeezed", gpus=0, node="cpu-0")
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        container["ports"] = [{"containerPort": port}]
        await kube.create("apps/v1", "deployments", NS, manifest)

        async def sandbox_failure() -> str | None:
            events = (await kube.list("v1", "events", NS))["items"]
            return next(
                (
                    e["message"]
                    for e in events
                    if e["reason"] == "FailedCreatePodSandBox"
                    and e["involvedObject"]["name"].startswith("squeezed-")
                ),
                None,
            )

        message = await eventually(sandbox_failure, deadline=15, what="a FailedCreatePodSandBox Event")
        assert f"port {port} free" in message and f"0.0.0.0:{port}" in message
        assert not any(ready(p) for p in await pods_of(kube, "squeezed"))

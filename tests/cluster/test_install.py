"""The plain manifests (deploy/hearth.yaml, the chart rendered) applied with the machine's
kubectl to a fresh homelab: the operator and the router run as the manifests' pods, with the
credentials a kubelet gives them, and serve a cold model end to end."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from hearth_sim import podman
from hearth_sim.homelab import Homelab, HomelabThread
from hearth_sim.hub import Hosted
from hearth_sim.kube import Kube

from .conftest import TIME_SCALE, eventually, off_the_loop, pod_ip_prefix
from .install_helpers import (
    HELM_DEADLINE,
    HELM_WAIT,
    HOST,
    INGRESS_VALUES,
    KUBECTL,
    ROOT,
    install_chart,
    kubectl,
    ready_pod,
    start_ingress_homelab,
)

# Where podman is, Hearth's pods must run as containers of its image (`make test` builds it).
PODMAN = shutil.which("podman") is not None
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomelabThread]:
    thread = start_ingress_homelab(tmp_path_factory.mktemp("homelab"))
    yield thread
    thread.stop()


def kubelet_note(homelab: HomelabThread) -> str:
    assert homelab.homelab.kubelet is not None
    return homelab.homelab.kubelet.runtime_note


def ran_in_a_container(homelab: HomelabThread, pod_name_prefix: str) -> bool:
    """Whether a pod of that name ran as a container of Hearth's image (not a local process);
    without podman on the machine, nothing is asked of it."""
    assert homelab.homelab.kubelet is not None
    ran = homelab.homelab.kubelet.contained.values()
    return not PODMAN or any(name.startswith(pod_name_prefix) for name in ran)


async def test_kubectl_apply_of_the_plain_manifests_runs_hearth_in_its_pods(homelab: HomelabThread) -> None:
    applied = kubectl(
        homelab, "apply", "-f", str(ROOT / "deploy" / "crds"), "-f", str(ROOT / "deploy" / "hearth.yaml")
    )
    assert "deployment.apps/hearth-operator created" in applied and "clusterrole" in applied
    kube = Kube(homelab.homelab.url)
    try:
        operator = await ready_pod(kube, "operator")
        router = await ready_pod(kube, "router")
        for pod in (operator, router):
            name = pod["metadata"]["name"]
            assert ran_in_a_container(homelab, f"hearth/{name}"), f"{name}: {kubelet_note(homelab)}"
        kubectl(homelab, "apply", "-f", str(ROOT / "deploy" / "examples" / "sim-small.yaml"))
        url = f"http://{router['status']['podIP']}:8012"
        statuses = await chat_statuses(url, "small")
        assert statuses[0] == "routing" and "loading" in statuses and statuses[-1] == "done"
        small = await kube.get("hearth.dev/v1alpha1", "modeldeployments", "default", "small")
        assert "status" in small, small
        assert small["status"]["phase"] == "Warm" and small["status"]["node"] == "gpu-3070"
        # Weights from a URL go through the chart's cache: the operator runs a fetch Job (its
        # RBAC allows it), the engine loads what the Job left.
        await streams_a_downloaded_model(homelab, kube, url)
        # They talked to the API server as their ServiceAccounts, and the chart's RBAC let them
        # do all they did: not one request was refused.
        for component in ("operator", "router"):
            pod = await ready_pod(kube, component)
            assert pod["spec"]["serviceAccountName"] == f"hearth-{component}"
        assert homelab.homelab.api is not None
        assert homelab.homelab.api.auth.tokens, "the pods must use their own tokens"
        assert homelab.homelab.api.auth.denied == []

        # The enforcement is real: without its rule for Services, the operator is refused.
        role = await kube.get("rbac.authorization.k8s.io/v1", "clusterroles", None, "hearth-operator")
        role["rules"] = [r for r in role["rules"] if r["resources"] != ["services"]]
        await kube.replace("rbac.authorization.k8s.io/v1", "clusterroles", None, "hearth-operator", role)
        kubectl(homelab, "apply", "-f", str(ROOT / "deploy" / "examples" / "sim-medium.yaml"))

        async def refused() -> list[str]:
            assert homelab.homelab.api is not None
            return [m for m in homelab.homelab.api.auth.denied if "services" in m]

        denied = await eventually(refused, deadline=30, what="the operator to be refused")
        assert (
            'User "system:serviceaccount:hearth:hearth-operator" cannot get resource "services"' in denied[0]
        )
    finally:
        kubectl(homelab, "delete", "-f", str(ROOT / "deploy" / "hearth.yaml"), "--wait=false")

        async def gone() -> bool:
            return not (await kube.list("v1", "pods", "hearth"))["items"]

        await eventually(gone, deadline=30, what="Hearth's pods to go")
        await kube.close()

    # Their containers are stopped (SIGTERM, within the 30 s grace) and removed after them.
    async def stopped() -> bool:
        return not containers_left(homelab, "hearth")

    await eventually(stopped, deadline=45, interval=0.5, what="the pods' containers to be removed")


def containers_left(homelab: HomelabThread, namespace: str) -> list[str]:
    """Names of the containers this homelab's kubelet still has for pods of `namespace`."""
    if not PODMAN:
        return []
    done = subprocess.run(
        [
            "podman",
            "ps",
            "--all",
            "--filter",
            f"label=io.kubernetes.pod.namespace={namespace}",
            "--filter",
            f"label={podman.LABEL}={os.getpid()}",
            "--format",
            "{{.Names}}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.split()


async def chat_statuses(
    router_url: str, model: str, headers: dict[str, str] | None = None
) -> list[str | None]:
    """Once the router lists `model`, a streamed chat to it: each event's status, ending [DONE]."""

    async def listed() -> bool:
        async with httpx.AsyncClient(headers=headers) as http:
            r = await http.get(f"{router_url}/v1/models")
        return r.status_code == 200 and any(m["id"] == model for m in r.json()["data"])

    await eventually(listed, deadline=30, what=f"the router pod to see {model}")
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        httpx.AsyncClient(timeout=60, headers=headers) as http,
        http.stream("POST", f"{router_url}/v1/chat/completions", json=body) as r,
    ):
        lines = [line[6:] async for line in r.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]", lines[-3:]
    return [json.loads(line).get("status") for line in lines[:-1]]


async def streams_a_downloaded_model(
    homelab: HomelabThread,
    kube: Kube,
    router_url: str,
    headers: dict[str, str] | None = None,
    name: str = "fetched",
) -> None:
    """A model applied with kubectl whose weights come from a URL: the operator's fetch Job (a
    container of the image too) downloads them into the cache, then a chat streams downloading →
    loading → reply."""
    homelab.homelab.hub.files[f"{name}.gguf"] = Hosted.synthetic(8 << 20, seed=7)
    md = yaml.safe_load((ROOT / "deploy" / "examples" / "sim-small.yaml").read_text())
    md["metadata"] = {"name": name}
    uri = f"{homelab.homelab.hub_url}/files/{name}.gguf"
    md["spec"].update(
        model=name, aliases=[], modelSource={"uri": uri}, gpu={"class": "rtx3090", "vramGiB": 2}
    )
    manifest = homelab.homelab.state_dir / f"{name}.yaml"
    manifest.write_text(yaml.safe_dump(md))
    kubectl(homelab, "apply", "-n", "default", "-f", str(manifest))  # as a user applies a model
    statuses = await chat_statuses(router_url, name, headers)
    assert "downloading" in statuses and "loading" in statuses and statuses[-1] == "done", statuses
    assert statuses.index("downloading") < statuses.index("loading")
    fetched = await kube.get("hearth.dev/v1alpha1", "modeldeployments", "default", name)
    assert fetched["status"]["cache"]["bytes"] == 8 << 20
    assert ran_in_a_container(homelab, f"default/{name}-weights-"), kubelet_note(homelab)
    await gone_with_its_pods(kube, name)  # its GPU is free again for the module's next install


async def gone_with_its_pods(kube: Kube, model: str) -> None:
    await kube.delete("hearth.dev/v1alpha1", "modeldeployments", "default", model)

    async def gone() -> bool:
        return not (await kube.list("v1", "pods", "default", f"app.kubernetes.io/instance={model}"))["items"]

    await eventually(gone, deadline=30, what=f"the pods of {model} to go")


async def router_env(kube: Kube, namespace: str) -> dict[str, str]:
    """The environment of the router's only Ready pod (one rollout finished)."""

    async def settled() -> dict[str, str] | None:
        pods = (await kube.list("v1", "pods", namespace, "app.kubernetes.io/component=router"))["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        ready = [
            p
            for p in live
            if any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or []
            )
        ]
        if len(live) != 1 or len(ready) != 1:
            return None
        return {e["name"]: e.get("value", "") for e in ready[0]["spec"]["containers"][0]["env"]}

    return await eventually(settled, deadline=60, what="one Ready router pod")


async def streams_through_the_ingress(homelab: HomelabThread, kube: Kube, tmp: Path) -> None:
    """A model applied with kubectl goes Cold → Loading → Warm through the installed parts, and
    a chat reached the way a user reaches it (the Ingress's host) is streamed unbuffered: its
    first event arrives while the model is still loading."""
    slow = yaml.safe_load((ROOT / "deploy" / "examples" / "sim-medium.yaml").read_text())
    slow["metadata"] = {"name": "slowpoke"}
    slow["spec"].update(model="slowpoke", aliases=[])
    slow["spec"]["env"] = [{"name": "HEARTH_SIM_LOAD_SECONDS", "value": "100"}]  # 5 s here
    (tmp / "slowpoke.yaml").write_text(yaml.safe_dump(slow))
    kubectl(homelab, "apply", "-n", "default", "-f", str(tmp / "slowpoke.yaml"))
    body = {"model": "slowpoke", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Host": HOST}
    url = f"{homelab.homelab.ingress_url}/v1/chat/completions"

    async def listed() -> bool:
        async with httpx.AsyncClient() as http:
            r = await http.get(f"{homelab.homelab.ingress_url}/v1/models", headers=headers)
        return r.status_code == 200 and any(m["id"] == "slowpoke" for m in r.json()["data"])

    await eventually(listed, deadline=30, what="the router to answer through the ingress")
    statuses: list[str] = []
    phase_at_first_event = None
    async with (
        httpx.AsyncClient(timeout=60) as http,
        http.stream("POST", url, json=body, headers=headers) as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            statuses.append(json.loads(line[6:]).get("status"))
            if phase_at_first_event is None:
                md = await kube.get("hearth.dev/v1alpha1", "modeldeployments", "default", "slowpoke")
                phase_at_first_event = (md.get("status") or {}).get("phase")
    assert phase_at_first_event in (None, "Cold", "Loading"), "the ingress held the stream back"
    assert statuses[0] == "routing" and "loading" in statuses and statuses[-1] == "done"
    md = await kube.get("hearth.dev/v1alpha1", "modeldeployments", "default", "slowpoke")
    assert md["status"]["phase"] == "Warm" and md["status"]["warmup"]["samples"]  # a load measured
    await gone_with_its_pods(kube, "slowpoke")  # its GPU is free again for the next model


@pytest.mark.timeout(300)  # five Helm calls, each bounded by HELM_DEADLINE
async def test_helm_installs_upgrades_rolls_back_and_uninstalls_the_chart(
    homelab: HomelabThread, tmp_path: Path
) -> None:
    """Real Helm v4 (helm-python-sdk, in-process) with its default storage: release records are
    Secrets, posted as protobuf, kept by the API server like any other object."""
    from helm_python import Config

    helm = Config(kubeconfig_path=str(homelab.homelab.kubeconfig_path), namespace="lab")
    kube = Kube(homelab.homelab.url)
    chart = str(ROOT / "charts" / "hearth")
    try:
        values = {"router": {"settings": {"maxWaiters": 8}}, "ingress": INGRESS_VALUES}
        await install_chart(helm, kube, "lab", values)
        assert (await router_env(kube, "lab"))["HEARTH_ROUTER_MAX_WAITERS"] == "8"
        await streams_through_the_ingress(homelab, kube, tmp_path)
        await streams_a_downloaded_model(
            homelab, kube, homelab.homelab.ingress_url, headers={"Host": HOST}, name="pulled"
        )
        first_router = (await ready_pod(kube, "router", "lab"))["metadata"]["name"]
        assert ran_in_a_container(homelab, f"lab/{first_router}"), kubelet_note(homelab)
        await off_the_loop(
            lambda: helm.upgrade(
                chart,
                "hearth",
                {"router": {"settings": {"maxWaiters": 9}}},
                wait="watcher",
                timeout=HELM_WAIT,
            ),
            HELM_DEADLINE,
            "helm upgrade",
        )
        assert (await router_env(kube, "lab"))[
            "HEARTH_ROUTER_MAX_WAITERS"
        ] == "9"  # the value reached the pod
        rolled = (await ready_pod(kube, "router", "lab"))["metadata"]["name"]
        assert rolled != first_router and ran_in_a_container(homelab, f"lab/{rolled}"), kubelet_note(homelab)
        await off_the_loop(
            lambda: helm.rollback("hearth", version=1, wait="watcher", timeout=HELM_WAIT),
            HELM_DEADLINE,
            "helm rollback",
        )
        assert (await router_env(kube, "lab"))["HEARTH_ROUTER_MAX_WAITERS"] == "8"
        history = await off_the_loop(lambda: helm.history("hearth"), HELM_DEADLINE, "helm history")
        assert [r["revision"] for r in history] == [1, 2, 3]
        records = await kube.list("v1", "secrets", "lab", "owner=helm,name=hearth")
        assert len(records["items"]) == 3  # one release Secret per revision, found by labels
        await off_the_loop(
            lambda: helm.uninstall("hearth", wait="watcher", timeout=HELM_WAIT),
            HELM_DEADLINE,
            "helm uninstall",
        )

        async def gone() -> bool:
            left = await kube.list("apps/v1", "deployments", "lab")
            pods = await kube.list("v1", "pods", "lab")
            return not left["items"] and not pods["items"]

        await eventually(gone, deadline=30, what="the release's objects to go")
        crd = await kube.get(
            "apiextensions.k8s.io/v1", "customresourcedefinitions", None, "modeldeployments.hearth.dev"
        )
        assert crd["metadata"]["name"] == "modeldeployments.hearth.dev"  # kept, as Helm keeps CRDs
        assert homelab.homelab.api is not None and not [
            m for m in homelab.homelab.api.auth.denied if "serviceaccount:lab:" in m
        ]
    finally:
        helm.close()
        await kube.close()


async def test_without_containers_hearths_pods_run_as_console_scripts_and_it_says_so_once(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Where podman or the image is missing, the homelab runs the same manifests' pods as the
    matching console scripts (with a kubeconfig of their ServiceAccount), and says why once."""
    lab = Homelab(
        state_dir=tmp_path_factory.mktemp("processes"),
        time_scale=TIME_SCALE,
        backoff_base=0.2,
        ip_prefix=pod_ip_prefix(),
        containers=False,
    )
    thread = HomelabThread(lab)
    thread.start()
    kube = Kube(lab.url)
    try:
        with caplog.at_level(logging.INFO, logger="hearth.sim.kubelet"):
            kubectl(
                thread,
                "apply",
                "-f",
                str(ROOT / "deploy" / "crds"),
                "-f",
                str(ROOT / "deploy" / "hearth.yaml"),
            )
            router = await ready_pod(kube, "router")
            await ready_pod(kube, "operator")
            kubectl(thread, "apply", "-f", str(ROOT / "deploy" / "examples" / "sim-small.yaml"))
            statuses = await chat_statuses(f"http://{router['status']['podIP']}:8012", "small")
        assert statuses[0] == "routing" and statuses[-1] == "done"
        assert lab.kubelet is not None and not lab.kubelet.contained
        said = [r.getMessage() for r in caplog.records if "console scripts" in r.getMessage()]
        assert said == [
            "Hearth's pods run as console scripts, not containers: containers are off for this homelab"
        ]
    finally:
        await kube.close()
        thread.stop()

"""What the install tests and the drills that install Hearth share: the machine's kubectl against
a homelab, real Helm's time bounds, and waits on the pods a release runs."""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hearth_sim.homelab import Homelab, HomelabThread
from hearth_sim.kube import Kube

from .conftest import TIME_SCALE, eventually, off_the_loop, pod_ip_prefix

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")
T = TypeVar("T")
HELM_WAIT = 60  # each Helm call's own --timeout (--wait for the release's pods to be Ready)
HELM_DEADLINE = 90.0  # and past that, the call itself is given up
# The chart's Ingress as the tests install it: one host, everything to the router.
HOST = "hearth.lan"
INGRESS_VALUES: dict[str, Any] = {
    "enabled": True,
    "className": "nginx",
    "hosts": [{"host": HOST, "paths": [{"path": "/", "pathType": "Prefix"}]}],
}


def bounded(call: Callable[[], T], deadline: float, what: str) -> T:
    """A call that may block in native code (real Helm, in-process), from a synchronous
    fixture: run on a daemon thread, given up after `deadline` seconds naming the call."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name=what, daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise AssertionError(f"{what} did not return within {deadline:g} s")
    if failure:
        raise failure[0]
    return outcome[0]


def start_ingress_homelab(state_dir: Path) -> HomelabThread:
    """A homelab that also runs an ingress controller, as a user's cluster does."""
    lab = Homelab(
        state_dir=state_dir,
        time_scale=TIME_SCALE,
        backoff_base=0.2,
        ip_prefix=pod_ip_prefix(),
        ingress_port=0,
    )
    thread = HomelabThread(lab)
    thread.start()
    return thread


def kubectl(homelab: HomelabThread, *args: str) -> str:
    assert KUBECTL is not None
    cmd = [KUBECTL, "--kubeconfig", str(homelab.homelab.kubeconfig_path), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


async def ready_pod(kube: Kube, component: str, namespace: str = "hearth") -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        selector = f"app.kubernetes.io/component={component}"
        for pod in (await kube.list("v1", "pods", namespace, selector))["items"]:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            conditions = (pod.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                return dict(pod)
        return None

    return await eventually(check, deadline=60, what=f"the {component} pod to be Ready")


async def pods_not_ready(kube: Kube, namespace: str) -> list[str]:
    """Each pod of the namespace that is not Ready, with what its container is waiting on."""
    described = []
    for pod in (await kube.list("v1", "pods", namespace))["items"]:
        status = pod.get("status") or {}
        if any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []):
            continue
        states = [c.get("state") or {} for c in status.get("containerStatuses") or []]
        described.append(f"{pod['metadata']['name']}: {states or status.get('phase')}")
    return described


async def install_chart(helm: Any, kube: Kube, namespace: str, values: dict[str, Any]) -> None:
    """`helm install hearth charts/hearth` (real Helm, helm-python-sdk's `Config` for `namespace`),
    waiting for its pods to be Ready; a chart the pods cannot live with fails saying what they say."""
    try:
        await off_the_loop(
            lambda: helm.install(
                str(ROOT / "charts" / "hearth"),
                "hearth",
                values,
                create_namespace=True,
                wait="watcher",
                timeout=HELM_WAIT,
            ),
            HELM_DEADLINE,
            "helm install",
        )
    except Exception as exc:
        raise AssertionError(f"helm install: {exc}; pods: {await pods_not_ready(kube, namespace)}") from exc

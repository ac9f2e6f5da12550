"""Hearth's image as `make image` built it, run by podman as a locked-down pod runs it: UID 1000,
a read-only root, every capability dropped, no privilege escalation. Each program starts and
does its job — the router and the operator against the homelab's API with a kubeconfig mounted,
the fetch into a mounted cache — and nothing can be written outside the mounts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from hearth_api.model_deployment import HEARTH_IMAGE
from hearth_sim.homelab import HomelabThread
from hearth_sim.hub import Hosted
from hearth_sim.image import LABEL, source_digest
from hearth_sim.kube import Kube

from .conftest import eventually, free_port

PODMAN = shutil.which("podman")
RUNTIME = ["--runtime", "runc"] if shutil.which("runc") else []


def image_labels() -> dict[str, str]:
    """The labels of Hearth's image in podman's store; none when it is not there."""
    if PODMAN is None:
        return {}
    done = subprocess.run(
        [PODMAN, "image", "inspect", "--format", "{{json .Config.Labels}}", HEARTH_IMAGE],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return dict(json.loads(done.stdout)) if done.returncode == 0 else {}


pytestmark = [
    pytest.mark.skipif(PODMAN is None, reason="podman is not installed (.ci/run installs it)"),
]


@pytest.fixture(scope="module", autouse=True)
def built_image() -> None:
    """`make test` builds the image first; a stale or missing one is a failure, not a skip."""
    assert image_labels().get(LABEL) == source_digest(), (
        f"{HEARTH_IMAGE} is missing or stale: run `make image`"
    )


def locked_down(*args: str, name: str | None = None) -> list[str]:
    """`podman run` as the chart's securityContext runs a container, on the host's loopback."""
    assert PODMAN is not None
    named = ["--name", name] if name else []
    return [
        PODMAN,
        *RUNTIME,
        "run",
        "--rm",
        *named,
        "--pull",
        "never",
        "--network",
        "host",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "--user",
        "1000:1000",
        "--read-only",
        "--read-only-tmpfs=false",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        *args,
    ]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(locked_down(*args), capture_output=True, text=True, timeout=120)


@pytest.fixture
def served(homelab: HomelabThread, tmp_path: Path) -> Iterator[tuple[list[str], str]]:
    """Mounts and env that let a program reach the homelab's API as a pod's kubeconfig would."""
    config = tmp_path / "kubeconfig"
    shutil.copy(homelab.homelab.kubeconfig_path, config)
    config.chmod(0o644)
    yield (
        ["--volume", f"{config}:/etc/hearth/kubeconfig:ro", "--env", "KUBECONFIG=/etc/hearth/kubeconfig"],
        (f"tmp-{tmp_path.name}"),
    )


def stop(name: str) -> None:
    assert PODMAN is not None
    subprocess.run([PODMAN, "rm", "--force", "--time", "0", name], capture_output=True, timeout=60)


def test_the_image_runs_as_1000_on_a_read_only_root_without_tools_or_the_homelab() -> None:
    done = run(
        HEARTH_IMAGE,
        "sh",
        "-c",
        "id -u; id -g; touch /written 2>&1; echo root=$?; touch /opt/hearth/x 2>&1; echo venv=$?; "
        "python3 -c 'import hearth_router, hearth_operator, hearth_fetch, hearth_sim_engine'; echo ours=$?; "
        "python3 -c 'import hearth_sim' 2>/dev/null; echo homelab=$?; "
        "python3 -c 'import kmock' 2>/dev/null; echo kmock=$?; "
        "python3 -c 'import jsonschema' 2>/dev/null; echo jsonschema=$?; "
        "python3 -m pip --version >/dev/null 2>&1; echo pip=$?; command -v gcc cc; echo cc=$?",
    )
    out = done.stdout.split()
    assert out[:2] == ["1000", "1000"], done.stdout + done.stderr
    assert "Read-only" in done.stdout and "root=1" in out and "venv=1" in out
    assert "ours=0" in out
    assert {"homelab=1", "kmock=1", "jsonschema=1", "pip=1"} <= set(out), done.stdout
    assert "cc=0" not in out, "a compiler is left in the image"


def test_the_image_carries_its_oci_labels() -> None:
    labels = image_labels()
    assert labels["org.opencontainers.image.source"] == "https://github.com/hearth-dev/hearth"
    assert labels["org.opencontainers.image.version"] == HEARTH_IMAGE.rsplit(":", 1)[1]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


@contextlib.asynccontextmanager
async def serving(args: list[str], name: str, probe: str) -> AsyncIterator[None]:
    """A long-running program of the image, until its probe URL answers 200; removed after."""
    proc = await asyncio.create_subprocess_exec(
        *locked_down(*args, name=name), stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:

        async def answers() -> bool:
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    return (await http.get(probe)).status_code == 200
            except httpx.HTTPError:
                return proc.returncode is not None  # it ended: stop waiting, the assert says why

        await eventually(answers, deadline=60, what=f"{probe} of {args[-1]} in the image")
        assert proc.returncode is None, f"the container ended: {proc.returncode}"
        yield
    finally:
        stop(name)
        await asyncio.wait_for(proc.wait(), 60)


async def test_the_router_starts_and_answers_its_health_checks(served: tuple[list[str], str]) -> None:
    mounts, name = served
    port = free_port()
    env = ["--env", "HEARTH_ROUTER_HOST=127.0.0.1", "--env", f"HEARTH_ROUTER_PORT={port}"]
    args = [*mounts, *env, HEARTH_IMAGE, "hearth-router"]
    async with serving(args, name, f"http://127.0.0.1:{port}/readyz"), httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).json() == {"status": "ok"}
        assert "text/html" in (await http.get(f"http://127.0.0.1:{port}/")).headers["content-type"]


async def test_the_operator_starts_and_answers_its_liveness_probe(served: tuple[list[str], str]) -> None:
    mounts, name = served
    metrics, liveness = free_port(), free_port()
    env = [
        "--env",
        "HEARTH_OPERATOR_METRICS_HOST=127.0.0.1",
        "--env",
        f"HEARTH_OPERATOR_METRICS_PORT={metrics}",
        "--env",
        f"HEARTH_OPERATOR_LIVENESS=http://127.0.0.1:{liveness}/healthz",
    ]
    args = [*mounts, *env, HEARTH_IMAGE, "hearth-operator", "run"]
    async with (
        serving(args, name, f"http://127.0.0.1:{liveness}/healthz"),
        httpx.AsyncClient(timeout=5) as http,
    ):
        assert "hearth_models" in (await http.get(f"http://127.0.0.1:{metrics}/metrics")).text


def test_the_fetch_downloads_into_a_mounted_cache_and_nowhere_else(
    homelab: HomelabThread, tmp_path: Path
) -> None:
    homelab.homelab.hub.files["image-test.gguf"] = Hosted.synthetic(3 << 20, seed=3)
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o777)  # as a claim's folder is
    uri = f"{homelab.homelab.hub_url}/files/image-test.gguf"
    done = run(
        "--volume", f"{cache}:/cache:rw", HEARTH_IMAGE, "hearth-fetch", "--uri", uri, "--cache", "/cache"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    written = [p for p in cache.rglob("*") if p.is_file() and p.name == "image-test.gguf"]
    assert len(written) == 1 and written[0].stat().st_size == 3 << 20
    assert written[0].stat().st_uid == 1000  # written by the image's user, through the mount


async def test_a_pod_the_image_cannot_run_as_is_refused_with_the_reason(homelab: HomelabThread) -> None:
    """runAsNonRoot with runAsUser 0: a kubelet refuses to create the container
    (CreateContainerConfigError), and so does the homelab's, with an Event naming why."""
    kube = Kube(homelab.homelab.url)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "rooted"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "rooted"}},
            "template": {
                "metadata": {"labels": {"app": "rooted"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": "cpu-0"},
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 0},
                    "containers": [{"name": "router", "image": HEARTH_IMAGE, "command": ["hearth-router"]}],
                },
            },
        },
    }
    try:
        await kube.create("apps/v1", "deployments", "default", deployment)

        async def refused() -> dict[str, str] | None:
            for pod in (await kube.list("v1", "pods", "default", "app=rooted"))["items"]:
                for status in (pod.get("status") or {}).get("containerStatuses") or []:
                    waiting = status.get("state", {}).get("waiting") or {}
                    if waiting.get("reason") == "CreateContainerConfigError":
                        return dict(waiting)
            return None

        waiting = await eventually(refused, deadline=30, what="the container to be refused")
        assert waiting["message"] == "container has runAsNonRoot and image will run as root"
    finally:
        await kube.delete("apps/v1", "deployments", "default", "rooted")
        await kube.close()

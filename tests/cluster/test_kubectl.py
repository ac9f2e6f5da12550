"""A real kubectl against the simulated homelab's API server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hearth_sim.homelab import HomelabThread

from ..conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed on this machine")


def kubectl(homelab: HomelabThread, *args: str, check: bool = True) -> str:
    assert KUBECTL is not None
    cmd = [KUBECTL, "--kubeconfig", str(homelab.homelab.kubeconfig_path), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check:
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done.stdout + done.stderr


def test_apply_get_describe_delete(homelab: HomelabThread) -> None:
    out = kubectl(homelab, "apply", "-f", str(ROOT / "deploy" / "examples"))
    assert "modeldeployment.hearth.dev/medium created" in out
    assert "unchanged" in kubectl(
        homelab, "apply", "-f", str(ROOT / "deploy" / "examples" / "sim-medium.yaml")
    )

    kubectl(
        homelab,
        "patch",
        "md",
        "medium",
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        json.dumps(
            {
                "status": {
                    "phase": "Warm",
                    "gpuClass": "rtx3090",
                    "node": "gpu-3090",
                    "warmup": {"estimateSeconds": 14.5},
                }
            }
        ),
    )
    table = kubectl(homelab, "get", "md")
    header = table.splitlines()[0].split()
    assert header == ["NAME", "MODEL", "PHASE", "GPU", "NODE", "VRAM", "(GIB)", "ETA", "(S)", "CACHED", "AGE"]
    medium = next(line.split() for line in table.splitlines() if line.startswith("medium "))
    assert medium[:6] == ["medium", "medium", "Warm", "rtx3090", "gpu-3090", "14.5"]

    described = kubectl(homelab, "describe", "md", "medium")
    assert "Vram Gi B:" in described and "Phase:" in described and "Warm" in described

    assert "deleted" in kubectl(homelab, "delete", "md", "medium")
    assert "NotFound" in kubectl(homelab, "get", "md", "medium", check=False)


def test_a_bad_model_deployment_is_refused_naming_the_field(homelab: HomelabThread, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""apiVersion: hearth.dev/v1alpha1
kind: ModelDeployment
metadata: {name: bad}
spec: {model: bad, engine: tgi, gpu: {class: rtx3070, vramGiB: 6}, replicas: 2}
""")
    out = kubectl(homelab, "apply", "-f", str(bad), check=False)
    assert 'ModelDeployment.hearth.dev "bad" is invalid' in out
    assert 'unknown field "spec.replicas"' in out and "spec.engine: Invalid value: 'tgi'" in out
    assert "NotFound" in kubectl(homelab, "get", "md", "bad", check=False)


def test_get_watch_prints_status_changes(homelab: HomelabThread) -> None:
    kubectl(homelab, "apply", "-f", str(ROOT / "deploy" / "examples" / "sim-big.yaml"))
    assert KUBECTL is not None
    watch = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(homelab.homelab.kubeconfig_path), "get", "md", "big", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline()
        assert first.split()[0] == "NAME"
        assert watch.stdout.readline().split()[0] == "big"
        kubectl(
            homelab,
            "patch",
            "md",
            "big",
            "--subresource",
            "status",
            "--type",
            "merge",
            "-p",
            '{"status": {"phase": "Loading"}}',
        )
        row = watch.stdout.readline().split()
        assert row[:3] == ["big", "big", "Loading"], row
    finally:
        watch.kill()
        watch.wait()


def test_get_nodes_pods_and_discovery(homelab: HomelabThread) -> None:
    nodes = kubectl(homelab, "get", "nodes")
    assert "gpu-3090" in nodes and "rtx3090" in nodes
    resources = kubectl(homelab, "api-resources")
    assert "modeldeployments" in resources and " md " in resources
    assert "Warning" not in kubectl(homelab, "get", "md")  # no ambiguous short name warnings


def test_logs_of_a_pod(homelab: HomelabThread, tmp_path: Path) -> None:
    manifest = tmp_path / "engine.yaml"
    manifest.write_text("""apiVersion: apps/v1
kind: Deployment
metadata: {name: chatter}
spec:
  replicas: 1
  selector: {matchLabels: {app: chatter}}
  template:
    metadata: {labels: {app: chatter}}
    spec:
      nodeSelector: {kubernetes.io/hostname: cpu-0}
      containers:
      - {name: engine, image: "ghcr.io/hearth-dev/hearth:0.1.0", command: [hearth-sim-engine],
         args: [--model, chatter, --load-seconds, "0"]}
""")
    kubectl(homelab, "apply", "-f", str(manifest))

    def served() -> str | None:
        pod = kubectl(
            homelab,
            "get",
            "pods",
            "-l",
            "app=chatter",
            "-o",
            "jsonpath={.items[0].metadata.name}",
            check=False,
        )
        logs = kubectl(homelab, "logs", pod, check=False) if pod and "error" not in pod else ""
        return logs if "serving chatter" in logs else None

    wait_until(served, deadline=15, what="the engine's output in `kubectl logs`")
    kubectl(homelab, "delete", "deployment", "chatter")

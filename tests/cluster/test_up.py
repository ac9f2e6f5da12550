"""`hearth-sim up`, the demo's command, as a user runs it: start, use with kubectl, Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from hearth_sim import weights
from hearth_sim.cli import port_taken

from ..conftest import descendants, wait_until
from .conftest import free_port, pod_ip_prefix

ROOT = Path(__file__).resolve().parents[2]


def engine_pids(model: str) -> list[int]:
    """Processes running the sim engine for `model` (by command line, so nothing is missed)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"hearth-sim-engine") for a in argv) and model.encode() in argv:
            pids.append(int(entry.name))
    return pids


def start_up(port: int, router_port: int, state_dir: Path, *flags: str) -> tuple[subprocess.Popen[str], str]:
    """`hearth-sim up` as `make demo` runs it; returns once it printed its banner."""
    # A short hold timeout: if something is wrong, a stream ends with an error event in seconds
    # rather than holding for five minutes.
    env = {**os.environ, "HEARTH_LOG_LEVEL": "WARNING", "HEARTH_ROUTER_HOLD_TIMEOUT_MIN": "20"}
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hearth_sim.cli",
            "up",
            "--port",
            str(port),
            "--router-port",
            str(router_port),
            "--pod-ip-prefix",
            pod_ip_prefix(),
            "--time-scale",
            "0.05",
            "--state-dir",
            str(state_dir),
            "--hub-port",
            "0",
            *flags,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=(state_dir / "up.stderr").open("ab"),  # a file: a full pipe would block it
        text=True,
    )
    assert up.stdout is not None
    banner = ""
    while "Ctrl-C" not in banner:
        line = up.stdout.readline()
        if not line:
            up.wait(20)
            errors = (state_dir / "up.stderr").read_text(errors="replace")[-3000:]
            raise AssertionError(f"hearth-sim up exited early ({up.returncode}): {banner}{errors}")
        banner += line
    return up, banner


def ctrl_c(up: subprocess.Popen[str]) -> None:
    up.send_signal(signal.SIGINT)
    assert up.wait(20) == 0


def test_up_serves_the_examples_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    port, router_port = free_port(), free_port()
    up, banner = start_up(port, router_port, tmp_path)
    try:
        assert str(tmp_path / "kubeconfig") in banner
        url = f"http://127.0.0.1:{port}"
        names = {
            o["metadata"]["name"]
            for o in httpx.get(f"{url}/apis/hearth.dev/v1alpha1/namespaces/default/modeldeployments").json()[
                "items"
            ]
        }
        real = {"smollm2"} if weights.cached() else set()  # llama.cpp's, where its weights are cached
        assert names == {"small", "medium", "big", "fetched"} | real
        fetched = httpx.get(
            f"{url}/apis/hearth.dev/v1alpha1/namespaces/default/modeldeployments/fetched"
        ).json()
        assert fetched["spec"]["modelSource"]["uri"].endswith("/files/demo/fetched.gguf")

        model = f"upcheck-{port}"
        dep = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "upcheck"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "upcheck"}},
                "template": {
                    "metadata": {"labels": {"app": "upcheck"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "engine",
                                "image": "ghcr.io/hearth-dev/hearth:0.1.0",
                                "command": ["hearth-sim-engine"],
                                "args": ["--model", model],
                            }
                        ]
                    },
                },
            },
        }
        httpx.post(f"{url}/apis/apps/v1/namespaces/default/deployments", json=dep).raise_for_status()
        pids = wait_until(lambda: engine_pids(model), deadline=15, what="the engine process to start")

        # The operator and the router run too: a chat request to a cold example model streams
        # through to the end.
        router = f"http://127.0.0.1:{router_port}"
        # The banner comes once the router is ready: its curl works at once.
        assert httpx.get(f"{router}/readyz").status_code == 200
        body = {"model": "small", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.stream("POST", f"{router}/v1/chat/completions", json=body, timeout=60) as answer:
            lines = [line for line in answer.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and '"status":"done"' in lines[-2]
        pids = descendants(up.pid)
        assert len(pids) >= 4, "the operator, the router and two engines run under hearth-sim up"
    finally:
        ctrl_c(up)
    assert not [p for p in pids if Path(f"/proc/{p}").exists()], "a process outlived hearth-sim up"

    # A newcomer's restart: the same command again at once, while the first run's connections
    # still sit in TIME_WAIT on its ports.
    again, _ = start_up(port, router_port, tmp_path)
    try:
        models = httpx.get(f"http://127.0.0.1:{router_port}/v1/models").json()
        assert {m["id"] for m in models["data"]} >= {"small", "medium", "big"}
    finally:
        ctrl_c(again)


def test_a_port_in_time_wait_is_free_but_a_listening_one_is_taken() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    assert port_taken("127.0.0.1", port)
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server closes first: its side of the connection enters TIME_WAIT
    client.close()
    listener.close()
    assert not port_taken("127.0.0.1", port), "a port whose old connections linger is free to bind"


def test_up_via_chart_installs_hearth_as_a_user_would(tmp_path: Path) -> None:
    """`hearth-sim up --via-chart`: the chart installed by Helm, the operator and the router as
    pods under its RBAC, the router reached through the ingress controller on its usual port."""
    port, router_port = free_port(), free_port()
    up, banner = start_up(port, router_port, tmp_path, "--via-chart")
    try:
        router = f"http://127.0.0.1:{router_port}"
        assert router in banner
        body = {"model": "small", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.stream("POST", f"{router}/v1/chat/completions", json=body, timeout=60) as answer:
            lines = [line for line in answer.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]" and '"status":"done"' in lines[-2]
        url = f"http://127.0.0.1:{port}"
        pods = httpx.get(f"{url}/api/v1/namespaces/hearth/pods").json()["items"]
        accounts = {p["spec"].get("serviceAccountName") for p in pods}
        assert accounts == {"hearth-operator", "hearth-router"}
    finally:
        ctrl_c(up)


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("kubectl") is None, reason="the tour uses curl and kubectl"
)
def test_the_readmes_quick_tour_works_as_written(tmp_path: Path) -> None:
    """Every command of README's "A quick tour", run by bash against `hearth-sim up`, with only
    its ports and paths moved to this test's (the demo's own may be running beside it)."""
    readme = (ROOT / "README.md").read_text()
    tour = readme.split("## A quick tour", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    port, router_port = free_port(), free_port()
    up, _ = start_up(port, router_port, tmp_path)
    try:
        script = (
            tour.replace("127.0.0.1:8012", f"127.0.0.1:{router_port}")
            .replace("$PWD/.hearth/kubeconfig", str(tmp_path / "kubeconfig"))
            .replace(".venv/bin/python", sys.executable)
        )
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=240
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        out = done.stdout
        assert out.count('"status":"done"') == 2 and out.count("data: [DONE]") == 2, out[-2000:]
        assert '"status":"loading"' in out and '"status":"downloading"' in out
        assert "medium" in out and "PHASE" in out  # kubectl get md
        assert out.rstrip().splitlines()[-1].strip(), "the OpenAI client printed no answer"
    finally:
        ctrl_c(up)

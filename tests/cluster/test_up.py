"""`hearth-sim up`, the demo's command, as a user runs it: start, use with kubectl, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ..conftest import descendants
from .conftest import free_port, pod_ip_prefix


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
        if b"engine" in argv and model.encode() in argv:
            pids.append(int(entry.name))
    return pids


def test_up_serves_the_examples_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    port, router_port = free_port(), free_port()
    # A short hold timeout: if something is wrong, the stream below ends with an error event
    # in seconds rather than holding for five minutes.
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
            str(tmp_path),
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert up.stdout is not None
        banner = ""
        while "Ctrl-C" not in banner:
            line = up.stdout.readline()
            assert line, f"hearth-sim up exited early: {banner}"
            banner += line
        assert str(tmp_path / "kubeconfig") in banner
        url = f"http://127.0.0.1:{port}"
        names = {
            o["metadata"]["name"]
            for o in httpx.get(f"{url}/apis/hearth.dev/v1alpha1/namespaces/default/modeldeployments").json()[
                "items"
            ]
        }
        assert names == {"small", "medium", "big"}

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
                                "command": ["hearth-sim", "engine"],
                                "args": ["--model", model],
                            }
                        ]
                    },
                },
            },
        }
        httpx.post(f"{url}/apis/apps/v1/namespaces/default/deployments", json=dep).raise_for_status()
        deadline = time.monotonic() + 15
        while not engine_pids(model):
            assert time.monotonic() < deadline, "the engine process never started"
            time.sleep(0.05)
        pids = engine_pids(model)

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
        up.send_signal(signal.SIGINT)
        assert up.wait(20) == 0
    assert not [p for p in pids if Path(f"/proc/{p}").exists()], "a process outlived hearth-sim up"

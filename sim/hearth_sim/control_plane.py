"""Hearth's own programs on the simulated homelab, as `hearth-sim up` runs them: the operator
and the router as child processes against its API (ControlPlane), or installed by the Helm
chart as pods behind its ingress (ChartPlane, `--via-chart`); and the banner that says where
everything is until Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field

import httpx

from hearth_sim.homelab import CACHE_CLAIM, REPO_ROOT, Homelab
from hearth_sim.ports import free_port

BANNER = """
Hearth is up on the simulated homelab.
  Router       {router}   (OpenAI-compatible; /v1/models, /api/models, /metrics)
  API server   {url}   (kubeconfig: {kubeconfig})
  GPU nodes    {nodes}
  Logs         {logs}

Try:
  curl -N {router}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{{"model": "medium", "stream": true, "messages": [{{"role": "user", "content": "hi"}}]}}'
  export KUBECONFIG={kubeconfig}
  kubectl get md -w                   # Cold → Loading → Warm as requests arrive
  kubectl get nodes -L hearth.dev/gpu-class
  Any OpenAI client: base URL {router}/v1, any API key, models small / medium / big,
  and `fetched`, whose weights download first (Downloading, with progress, then the load).

Ctrl-C stops everything (every simulated pod's process included).
"""


@dataclass
class ControlPlane:
    """The operator and the router, run unmodified as child processes against the homelab."""

    homelab: Homelab
    router_host: str = "127.0.0.1"
    router_port: int = 8012
    procs: list[asyncio.subprocess.Process] = field(default_factory=list)

    @property
    def router_url(self) -> str:
        return f"http://{self.router_host}:{self.router_port}"

    async def start(self) -> None:
        logs = self.homelab.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.homelab.kubeconfig_path.resolve()),
            # The chart's weights cache, and the homelab's stand-in for Hugging Face.
            "HEARTH_OPERATOR_CACHE_CLAIM": CACHE_CLAIM,
            "HEARTH_OPERATOR_HF_ENDPOINT": self.homelab.hub_url,
            # Its own address and a free port: on 0.0.0.0:8080 its metrics would take 8080 on
            # every loopback address (another homelab could give no pod 8080), and a second
            # `hearth-sim up` on this machine (a test run beside the demo) finds 8080 taken.
            "HEARTH_OPERATOR_METRICS_HOST": self.router_host,
            "HEARTH_OPERATOR_METRICS_PORT": str(free_port(self.router_host)),
        }
        commands = {
            "operator": [sys.executable, "-m", "hearth_operator.cli", "run"],
            "router": [
                sys.executable,
                "-m",
                "hearth_router.cli",
                "--host",
                self.router_host,
                "--port",
                str(self.router_port),
            ],
        }
        for name, argv in commands.items():
            with (logs / f"{name}.log").open("ab") as out:
                self.procs.append(
                    await asyncio.create_subprocess_exec(
                        *argv, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
                    )
                )

    async def wait_ready(self, within: float = 60.0) -> bool:
        """Wait until the router has listed the models and the operator has given each a phase,
        so the banner's curl works the moment it is printed."""
        deadline = asyncio.get_running_loop().time() + within
        async with httpx.AsyncClient(timeout=2.0) as http:
            while asyncio.get_running_loop().time() < deadline:
                if any(p.returncode is not None for p in self.procs):
                    return False
                try:
                    if (await http.get(f"{self.router_url}/readyz")).status_code == 200:
                        models = (await http.get(f"{self.router_url}/v1/models")).json()["data"]
                        if all(m.get("phase") for m in models):
                            return True
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                await asyncio.sleep(0.1)  # a poll with a deadline: neither part has another signal
        return False

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@dataclass
class ChartPlane(ControlPlane):
    """The operator and the router installed the way a user installs them: the Helm chart (real
    Helm, in-process, its releases as Secrets), run as pods under its RBAC and reached through
    the homelab's ingress controller on the router's port."""

    async def start(self) -> None:
        from helm_python import Config  # a test/dev extra, like the chart rendering

        def install() -> None:
            helm = Config(kubeconfig_path=str(self.homelab.kubeconfig_path), namespace="hearth")
            try:
                # Models download from the homelab's stand-in for Hugging Face and file hosts.
                values = {**CHART_VALUES, "weightsCache": {"hfEndpoint": self.homelab.hub_url}}
                helm.install(str(CHART), "hearth", values, create_namespace=True, timeout=120)
            finally:
                helm.close()

        await asyncio.to_thread(install)

    async def stop(self) -> None:
        """Nothing of its own to stop: the pods go with the homelab."""


CHART = REPO_ROOT / "charts" / "hearth"
# Reached through the homelab's ingress controller, whatever host the user types.
CHART_VALUES = {
    "ingress": {"enabled": True, "hosts": [{"host": "", "paths": [{"path": "/", "pathType": "Prefix"}]}]}
}


async def serve_until_signalled(homelab: Homelab, plane: ControlPlane | None = None) -> None:
    """Run the homelab (and the operator and router) until SIGINT or SIGTERM, then stop every
    process it started."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with homelab.running():
        if plane is not None:
            await plane.start()
            if not await plane.wait_ready():
                print(
                    f"warning: the router did not become ready; see {homelab.state_dir / 'logs'}",
                    file=sys.stderr,
                    flush=True,
                )
        try:
            print(
                BANNER.format(
                    url=homelab.url,
                    kubeconfig=homelab.kubeconfig_path.resolve(),
                    nodes=", ".join(n.name for n in homelab.nodes),
                    router=plane.router_url if plane else "(not started)",
                    logs=(homelab.state_dir / "logs").resolve(),
                ),
                flush=True,
            )
            await stop.wait()
            print("stopping Hearth and the simulated homelab...", flush=True)
        finally:
            if plane is not None:
                await plane.stop()

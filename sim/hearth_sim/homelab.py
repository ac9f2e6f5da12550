"""The simulated homelab as one unit: API server + kubelet simulator + nodes + kubeconfig.

Used by `hearth-sim up` (the demo) and by the tests' cluster fixture, so both run the same
thing. `Homelab` is an async context manager; `HomelabThread` runs one on its own event loop in
a background thread, for synchronous test code.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import yaml
from aiohttp import web

from hearth_sim import weights
from hearth_sim.apiserver import HearthApiServer, Listener, serve_restartable
from hearth_sim.hub import Hosted, Hub
from hearth_sim.ingress import serve_ingress
from hearth_sim.kube import ApiError, Kube, kubeconfig
from hearth_sim.kubelet import Kubelet
from hearth_sim.node import KubeletConfig
from hearth_sim.nodes import DEFAULT_NODES, NodeSpec
from hearth_sim.pod_files import ApiEndpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_CLAIM = "hearth-weights"  # the weights cache's claim, as the chart names it
DEMO_HUB = "http://127.0.0.1:8013"  # where deploy/examples/sim-download.yaml's weights come from
DEMO_FILES = {"demo/fetched.gguf": 512 << 20}
DEMO_RATE = 25 << 20  # bytes per second: a download long enough to watch


@contextlib.asynccontextmanager
async def serving_hub(hub: Hub, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """The stand-in for Hugging Face and file hosts (on a free port by default): yields its URL."""
    runner = web.AppRunner(hub.app(), access_log=None)
    await runner.setup()
    sock = socket.create_server((host, port))
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


def manifests(paths: list[Path]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for f in files:
            docs.extend(d for d in yaml.safe_load_all(f.read_text()) if d)
    return docs


def runnable_here(doc: dict[str, Any], weights_staged: bool) -> bool:
    """Sim models always; llama.cpp models whose weights claim the homelab holds."""
    spec = doc["spec"]
    if spec.get("engine") == "sim":
        return True
    source = spec.get("modelSource") or {}
    return weights_staged and spec.get("engine") == "llamacpp" and source.get("pvc") == weights.MODELS_CLAIM


def sim_examples(
    root: Path = REPO_ROOT, weights_staged: bool = False, hub_url: str = DEMO_HUB
) -> list[dict[str, Any]]:
    """The example ModelDeployments that run here: the sim ones (those downloading from the
    demo's file host pointed at this homelab's), and the real llama.cpp one when its weights
    are cached."""
    docs = [
        d
        for d in manifests([root / "deploy" / "examples"])
        if d.get("kind") == "ModelDeployment" and runnable_here(d, weights_staged)
    ]
    for doc in docs:
        source = doc["spec"].get("modelSource") or {}
        if str(source.get("uri", "")).startswith(DEMO_HUB + "/"):
            source["uri"] = hub_url + source["uri"][len(DEMO_HUB) :]
    return docs


_PLURALS = {
    "CustomResourceDefinition": ("apiextensions.k8s.io/v1", "customresourcedefinitions"),
    "ModelDeployment": ("hearth.dev/v1alpha1", "modeldeployments"),
}


async def apply(kube: Kube, docs: list[dict[str, Any]], namespace: str = "default") -> None:
    """Create each document, or leave it as it is when it already exists."""
    for doc in docs:
        api_version, plural = _PLURALS[doc["kind"]]
        ns = None if doc["kind"] == "CustomResourceDefinition" else namespace
        with contextlib.suppress(ApiError):
            await kube.create(api_version, plural, ns, doc)


@dataclass
class Homelab:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    nodes: list[NodeSpec] = field(default_factory=lambda: list(DEFAULT_NODES))
    time_scale: float = 1.0
    backoff_base: float = 10.0
    ip_prefix: str = "127.10"  # pods get <prefix>.x.y; tests running side by side pick their own
    install_crd: bool = True
    examples: bool = False
    ingress_port: int | None = None  # an ingress controller on this port (0: any free one)
    ingress_host: str = "127.0.0.1"

    api: HearthApiServer | None = None
    listener: Listener | None = None  # the API server's HTTP side: `restart()` drills a restart
    https_listener: Listener | None = None  # the same API over https, for pods in containers
    containers: bool = True  # Hearth's own pods as containers of its image, where it is built
    url: str = ""
    kubelet: Kubelet | None = None
    ingress_url: str = ""
    hub: Hub = field(default_factory=Hub)  # where models download from (files, a Hub-like API)
    hub_url: str = ""
    hub_port: int = 0  # 0: any free port (`hearth-sim up` uses DEMO_HUB's)

    def host_demo_files(self) -> None:
        """The demo's downloads: synthetic weights at a rate one can watch."""
        for name, size in DEMO_FILES.items():
            self.hub.files.setdefault(name, Hosted.synthetic(size, seed=len(name)))
        self.hub.rate = self.hub.rate or DEMO_RATE

    @property
    def volumes_dir(self) -> Path:
        """A folder per PersistentVolumeClaim: what pods mount (the weights claim among them)."""
        return self.state_dir / "volumes"

    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Homelab]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        logs = self.state_dir / "logs"
        server = HearthApiServer(pod_log=lambda ns, pod: logs / f"{ns}_{pod}.log")
        async with serve_restartable(self.host, self.port, server) as listener:
            api, url = listener.api, listener.url
            self.api, self.url, self.listener = api, url, listener
            self.kubeconfig_path.write_text(yaml.safe_dump(kubeconfig(url), sort_keys=False))
            kube = Kube(url)
            # Pods in containers reach the API as pods do: https, the cluster's CA mounted.
            authority = trustme.CA()
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            authority.issue_cert(self.host, "localhost", "kubernetes.default.svc").configure_cert(tls)
            https = Listener(api, self.host, 0, tls)
            await https.start()
            self.https_listener = https
            ca_pem = authority.cert_pem.bytes().decode()
            (self.state_dir / "ca.crt").write_text(ca_pem)
            config = KubeletConfig(
                nodes=self.nodes,
                log_dir=logs,
                time_scale=self.time_scale,
                backoff_base=self.backoff_base,
                volumes_dir=self.volumes_dir,
                api=ApiEndpoint(self.host, https.port, ca_pem),
                containers=self.containers,
                ip_prefix=self.ip_prefix,
            )
            staged = weights.stage(self.volumes_dir) is not None
            self.kubelet = Kubelet(kube, config)
            if self.install_crd:
                await apply(kube, manifests([REPO_ROOT / "deploy" / "crds"]))
            task = asyncio.create_task(self.kubelet.run(), name="kubelet")
            try:
                # Up means the nodes are there: a client's first look must not find them missing.
                registered = asyncio.create_task(self.kubelet.registered.wait())
                await asyncio.wait({task, registered}, return_when=asyncio.FIRST_COMPLETED)
                if task.done():
                    registered.cancel()
                    task.result()  # the kubelet failed to start: say why
                async with contextlib.AsyncExitStack() as stack:
                    self.hub_url = await stack.enter_async_context(serving_hub(self.hub, port=self.hub_port))
                    # The hub is the homelab's internet: Ollama's registry included.
                    config.extra_env["HEARTH_SIM_OLLAMA_REGISTRY"] = self.hub_url
                    if self.examples:
                        self.host_demo_files()
                        await apply(kube, sim_examples(weights_staged=staged, hub_url=self.hub_url))
                    if self.ingress_port is not None:
                        self.ingress_url = await stack.enter_async_context(
                            serve_ingress(kube, self.ingress_host, self.ingress_port)
                        )
                    yield self
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await self.kubelet.shutdown()
                await kube.close()
                await https.stop()


class HomelabThread:
    """A Homelab on its own event loop in a daemon thread; `start()` returns once it serves."""

    def __init__(self, homelab: Homelab) -> None:
        self.homelab = homelab
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="homelab", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # surfaced to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with self.homelab.running():
            self._ready.set()
            await self._stop.wait()

    def start(self, timeout: float = 30) -> Homelab:
        self._thread.start()
        if not self._ready.wait(timeout) or self._error:
            raise RuntimeError("the simulated homelab did not start") from self._error
        return self.homelab

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

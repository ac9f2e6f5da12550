"""The kubelet simulator: Deployments and Jobs become Pods (controllers.py), Pods become local
processes or containers (containers.py).

Through the API like the real ones: it registers the nodes, watches Pods, gives each its own loopback IP,
runs the container's command as a process bound to it, probes readiness, restarts crashed
processes with back-off, writes Pod and Deployment status and Events, and kills processes when
their Pods go. Containers of Hearth's own image run as the matching local console script;
other images cannot run here, so such Pods stay waiting with `ErrImagePull` and an Event.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Any

from hearth_api.model_deployment import HEARTH_IMAGE
from hearth_sim import podman, weights
from hearth_sim.containers import PodRunner
from hearth_sim.controllers import Controllers
from hearth_sim.kube import ApiError, Kube
from hearth_sim.llamacpp import Runtime, find_runtime
from hearth_sim.node import KubeletConfig
from hearth_sim.recorder import Recorder
from hearth_sim.services import ServiceProxy

log = logging.getLogger("hearth.sim.kubelet")
Obj = dict[str, Any]


ADDRESSES = 250 * 256  # pod addresses of a block: <prefix>.0.2 … <prefix>.255.251
ADDRESS_RETRY = 10.0  # seconds before a pod that found no address looks again (a CNI retries)


def pod_address(prefix: str, n: int) -> str:
    """The n-th pod address of a /16 block (each third octet holds 250 of them, from .2)."""
    return f"{prefix}.{n // 250}.{n % 250 + 2}"


def pod_ports(pod: Obj) -> set[int]:
    """Every port the pod's containers declare (8000, an engine's, when none)."""
    return {
        int(port["containerPort"])
        for container in pod["spec"].get("containers") or []
        for port in container.get("ports") or []
        if "containerPort" in port
    } or {8000}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bindable(ip: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


class Kubelet:
    def __init__(self, kube: Kube, config: KubeletConfig) -> None:
        self.kube = kube
        self.config = config
        self.pods: dict[str, Obj] = {}  # uid → pod as last seen
        self.runners: dict[str, PodRunner] = {}
        self.pids: dict[str, int] = {}  # uid → pid of the running container process
        self.contained: dict[str, str] = {}  # uid → "ns/name" of pods run as containers of the image
        self._llamacpp: tuple[Runtime | None, str] | None = None  # found on the first such pod
        self._llamacpp_lock = asyncio.Lock()  # pods starting together share one probe
        self._runtime: tuple[podman.Runtime | None, str] | None = None  # found on the first such pod
        self._runtime_lock = asyncio.Lock()
        self._ips: dict[str, str] = {}
        self._next_ip = 2
        self._no_address: set[str] = set()  # pods that found no address, to look again later
        self.recorder = Recorder(kube)
        self.services = ServiceProxy(kube, config.ip_prefix)
        self.controllers = Controllers(kube, config, self.pods, self.recorder, self._start_pod)
        self._stopping: set[asyncio.Task[None]] = set()  # runners of deleted pods being stopped
        self.registered = asyncio.Event()  # every node is in the API: the homelab is up

    async def llamacpp(self) -> tuple[Runtime | None, str]:
        """The llama.cpp server that runs here (looked for once, off the event loop: a probe load
        takes a second or two), and which one it is or why there is none."""
        async with self._llamacpp_lock:
            if self._llamacpp is None:
                self._llamacpp = await asyncio.to_thread(find_runtime, weights.cached())
                log.info("llama.cpp pods: %s", self._llamacpp[1])
            return self._llamacpp

    @property
    def runtime_note(self) -> str:
        """How Hearth's pods run here, and why (once the first of them asked)."""
        return self._runtime[1] if self._runtime else "not looked for yet"

    async def container_runtime(self) -> podman.Runtime | None:
        """Podman and Hearth's image, looked for once (and the containers of kubelets that died
        swept away); the kubelet says once which way Hearth's pods run."""
        async with self._runtime_lock:
            if self._runtime is None:
                if not self.config.containers:
                    self._runtime = None, "containers are off for this homelab"
                elif self.config.api is None:
                    self._runtime = None, "the API server has no https listener for containers"
                else:
                    self._runtime = await podman.find_runtime(HEARTH_IMAGE, os.getpid())
                runtime, why = self._runtime
                if runtime is not None:
                    await runtime.sweep(_alive)
                    log.info("Hearth's pods run as containers: %s", why)
                else:
                    log.warning("Hearth's pods run as console scripts, not containers: %s", why)
            return self._runtime[0]

    async def run(self) -> None:
        for node in self.config.nodes:
            try:
                await self.kube.create("v1", "nodes", None, node.manifest())
            except ApiError as exc:
                if exc.code != 409:
                    raise
        self.registered.set()
        tasks = [asyncio.create_task(loop) for loop in [self._watch_pods(), *self.controllers.loops()]]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await self.shutdown()

    async def shutdown(self) -> None:
        await asyncio.gather(*(r.stop() for r in list(self.runners.values())), return_exceptions=True)
        await asyncio.gather(*self._stopping, return_exceptions=True)
        self.runners.clear()
        await self.services.close()

    # --- watches -----------------------------------------------------------------------------

    async def _watch_pods(self) -> None:
        async for kind, pod in self.kube.watch("v1", "pods"):
            uid = pod["metadata"]["uid"]
            if kind == "DELETED":
                self.pods.pop(uid, None)
                runner = self.runners.get(uid)
                if runner:
                    # Off the watch: a stop may take the grace period, and other pods' events
                    # must not wait for it.
                    stopping = asyncio.create_task(self._stop_runner(uid, runner, pod))
                    self._stopping.add(stopping)
                    stopping.add_done_callback(self._stopping.discard)
                self._ips.pop(uid, None)
            else:
                self.pods[uid] = pod
                if pod["spec"].get("nodeName"):
                    await self._start_pod(pod)
            self.controllers.pod_changed(pod, kind == "DELETED")
            self.services.pods_changed()

    async def _stop_runner(self, uid: str, runner: PodRunner, pod: Obj) -> None:
        # Stopped before it leaves `runners`, so a kubelet shutting down meanwhile still finds
        # (and kills) it.
        await runner.stop()
        self.runners.pop(uid, None)
        await self.event(pod, "Normal", "Killing", f"Stopped container {runner.container.get('name')}")

    async def _start_pod(self, pod: Obj) -> None:
        """Run a bound pod's containers on an address of its own — or, when no address is free,
        say so in an Event (FailedCreatePodSandBox, as a kubelet whose CNI ran out of addresses
        does) and try again every ADDRESS_RETRY seconds while the pod is there."""
        uid = pod["metadata"]["uid"]
        if uid in self.runners or uid in self._no_address:
            return
        ip = self._ips.get(uid) or self._allocate_ip(pod)
        if ip is None:
            self._no_address.add(uid)
            asyncio.get_running_loop().call_later(ADDRESS_RETRY, self._retry_address, uid)
            ports = ", ".join(str(p) for p in sorted(pod_ports(pod)))
            await self.event(
                pod,
                "Warning",
                "FailedCreatePodSandBox",
                f"Failed to create pod sandbox: no address in {self.config.ip_prefix}.0.0/16 has "
                f"port {ports} free (is a program listening on 0.0.0.0:{ports}?)",
            )
            return
        self._ips[uid] = ip
        self.runners[uid] = PodRunner(self, pod, ip)

    def _retry_address(self, uid: str) -> None:
        self._no_address.discard(uid)
        pod = self.pods.get(uid)
        if pod is not None and not pod["metadata"].get("deletionTimestamp"):
            retry = asyncio.create_task(self._start_pod(pod))
            self._stopping.add(retry)  # held, and awaited at shutdown, like a stop
            retry.add_done_callback(self._stopping.discard)

    def _allocate_ip(self, pod: Obj) -> str | None:
        """The next loopback address of the block on which every port the pod's containers
        declare is free (other homelabs, or other test sessions, may share 127/8); None once
        every address of the block was tried."""
        ports = pod_ports(pod)
        taken = set(self._ips.values())
        for _ in range(ADDRESSES):
            n = self._next_ip
            self._next_ip = self._next_ip + 1 if self._next_ip + 1 < ADDRESSES else 2
            ip = pod_address(self.config.ip_prefix, n)
            if ip not in taken and all(_bindable(ip, port) for port in ports):
                return ip
        return None

    # --- what runners write back (the Node protocol) -----------------------------------------

    async def patch_pod_status(self, ns: str, name: str, status: Obj) -> None:
        await self.recorder.patch_pod_status(ns, name, status)

    async def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        await self.recorder.event(obj, type_, reason, message)

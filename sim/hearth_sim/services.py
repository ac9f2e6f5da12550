"""Services as the homelab's pods and its ingress reach them.

A real cluster gives a Service a stable address (cluster DNS names it `name.namespace.svc`,
kube-proxy forwards its port to a Ready pod behind it). The homelab has neither, so:
- `endpoints` lists the Ready pods behind a Service's port (the ingress sends requests to them);
- `ServiceProxy` gives each Service a pod names in its env (`redis://hearth-store.lab.svc:6379`)
  a loopback address of its own, for as long as the homelab runs, where a forwarder process
  (forwarder.py) sends every connection to one of those pods, chosen at connect time — so a pod
  that restarts on a new address is found again, as through kube-proxy. The kubelet writes
  that address into the env in place of the name (`resolve`) and tells the proxy when pods
  change (`pods_changed`), which tells each forwarder its Ready pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import sys
from dataclasses import dataclass
from typing import Any

from hearth_sim.kube import ApiError, Kube
from hearth_sim.pod_spec import container_port
from hearth_sim.scheduling import is_ready

log = logging.getLogger("hearth.sim.services")
Obj = dict[str, Any]
# `name.namespace.svc[.cluster.local]:port`, as a Service is named in a URL or host:port value.
SERVICE_NAME = re.compile(
    r"\b(?P<name>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)\.(?P<ns>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"
    r"\.svc(?:\.cluster\.local)?:(?P<port>\d+)\b"
)
SERVICE_HOSTS = 256  # service addresses of a block: <prefix>.<k>.253 (pods never end in .253)


def service_names(value: str) -> list[tuple[str, str, int]]:
    """The (namespace, name, port) of every Service `value` names with a port. Pure."""
    return [(m["ns"], m["name"], int(m["port"])) for m in SERVICE_NAME.finditer(value)]


def ready_targets(pods: list[Obj], port: Obj) -> list[str]:
    """host:port of every Ready, not terminating pod of `pods` behind `port` (one of the
    Service's ports, its targetPort a number or a container port's name). Pure."""
    targets = []
    for pod in pods:
        status = pod.get("status") or {}
        if is_ready(pod) and status.get("podIP") and not pod["metadata"].get("deletionTimestamp"):
            containers = pod["spec"].get("containers") or []
            target = container_port(containers, port.get("targetPort") or port["port"])
            if target:
                targets.append(f"{status['podIP']}:{target}")
    return targets


async def endpoints(kube: Kube, namespace: str, name: str, wanted: Obj) -> list[str]:
    """host:port of the Ready pods behind the Service's port `wanted` ({"name"} or {"number"},
    as an Ingress backend gives it); [] when there is no such Service or port."""
    try:
        service = await kube.get("v1", "services", namespace, name)
    except ApiError:
        return []
    spec = service.get("spec") or {}
    port = next(
        (
            p
            for p in spec.get("ports") or []
            if p.get("name") == wanted.get("name") or p.get("port") == wanted.get("number")
        ),
        None,
    )
    selector = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())
    if port is None or not selector:
        return []
    pods = (await kube.list("v1", "pods", namespace, selector))["items"]
    return ready_targets(pods, port)


class Rotation:
    """Round robin over a changing list of targets, as ingress-nginx and kube-proxy spread
    connections over a Service's pods."""

    def __init__(self) -> None:
        self._turn = itertools.count()

    def pick(self, targets: list[str]) -> str | None:
        return targets[next(self._turn) % len(targets)] if targets else None


@dataclass
class Forwarding:
    """A Service address and the forwarder process behind it (forwarder.py)."""

    address: str
    proc: asyncio.subprocess.Process
    targets: list[str] | None = None  # as last written to it


class ServiceProxy:
    def __init__(self, kube: Kube, ip_prefix: str) -> None:
        self.kube = kube
        self.ip_prefix = ip_prefix
        self._forwardings: dict[tuple[str, str, int], Forwarding] = {}
        self._lock = asyncio.Lock()
        self._next = 0
        self._changed = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None

    async def resolve(self, value: str) -> str:
        """`value` with every Service it names replaced by that Service's address here."""
        addresses = {key: await self.address(*key) for key in service_names(value)}
        return SERVICE_NAME.sub(lambda m: addresses[(m["ns"], m["name"], int(m["port"]))], value)

    async def address(self, ns: str, name: str, port: int) -> str:
        """host:port that forwards to the Service's port (made on first use, kept)."""
        key = (ns, name, port)
        async with self._lock:
            if key not in self._forwardings:
                self._forwardings[key] = await self._spawn(key)
                await self._tell(key)
                if self._refresher is None:
                    self._refresher = asyncio.create_task(self._refresh(), name="service endpoints")
            return self._forwardings[key].address

    def pods_changed(self) -> None:
        """A pod came, went or changed readiness: the forwarders' targets are looked at again."""
        self._changed.set()

    async def _spawn(self, key: tuple[str, str, int]) -> Forwarding:
        for _ in range(SERVICE_HOSTS):
            host = f"{self.ip_prefix}.{self._next % SERVICE_HOSTS}.253"
            self._next += 1
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hearth_sim.forwarder",
                host,
                str(key[2]),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None
            if (await proc.stdout.readline()).startswith(b"listening"):
                log.info("service %s/%s:%d is at %s:%d", key[0], key[1], key[2], host, key[2])
                return Forwarding(f"{host}:{key[2]}", proc)
            await proc.wait()  # another homelab or test session holds it: the next one
        raise OSError(f"no service address in {self.ip_prefix}.0.0/16 has port {key[2]} free")

    async def _tell(self, key: tuple[str, str, int]) -> None:
        """Write the Service's Ready pods to its forwarder, when they changed."""
        ns, name, port = key
        forwarding = self._forwardings[key]
        targets = await endpoints(self.kube, ns, name, {"number": port})
        if targets != forwarding.targets and forwarding.proc.stdin is not None:
            forwarding.targets = targets
            forwarding.proc.stdin.write((" ".join(targets) + "\n").encode())
            with contextlib.suppress(ConnectionError):
                await forwarding.proc.stdin.drain()

    async def _refresh(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            for key in list(self._forwardings):
                with contextlib.suppress(ApiError, OSError):
                    await self._tell(key)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        for forwarding in self._forwardings.values():
            if forwarding.proc.stdin is not None:
                forwarding.proc.stdin.close()  # its cue to exit
        for forwarding in self._forwardings.values():
            try:
                await asyncio.wait_for(forwarding.proc.wait(), 5)
            except TimeoutError:
                forwarding.proc.kill()
                await forwarding.proc.wait()
        self._forwardings.clear()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes from one side to the other until either closes (then the other is closed too)."""
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()

"""Services as the homelab's pods and its ingress reach them.

A real cluster gives a Service a stable address (cluster DNS names it `name.namespace.svc`,
kube-proxy forwards its port to a Ready pod behind it). The homelab has neither, so:
- `endpoints` lists the Ready pods behind a Service's port (the ingress sends requests to them);
- `ServiceProxy` gives each Service a pod names in its env (`redis://hearth-store.lab.svc:6379`)
  a loopback address of its own, for as long as the homelab runs, and forwards every connection
  made to it to one of those pods, chosen at connect time — so a pod that restarts on a new
  address is found again, as through kube-proxy. The kubelet writes that address into the env
  in place of the name (`resolve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import socket
from typing import Any

from hearth_sim.kube import ApiError, Kube
from hearth_sim.pod_spec import container_port

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
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        if ready and status.get("podIP") and not pod["metadata"].get("deletionTimestamp"):
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


class ServiceProxy:
    def __init__(self, kube: Kube, ip_prefix: str) -> None:
        self.kube = kube
        self.ip_prefix = ip_prefix
        self._servers: dict[tuple[str, str, int], tuple[asyncio.Server, str]] = {}
        self._lock = asyncio.Lock()
        self._next = 0
        self._rotation = Rotation()
        self._pipes: set[asyncio.Task[None]] = set()

    async def resolve(self, value: str) -> str:
        """`value` with every Service it names replaced by that Service's address here."""
        addresses = {key: await self.address(*key) for key in service_names(value)}
        return SERVICE_NAME.sub(lambda m: addresses[(m["ns"], m["name"], int(m["port"]))], value)

    async def address(self, ns: str, name: str, port: int) -> str:
        """host:port that forwards to the Service's port (made on first use, kept)."""
        key = (ns, name, port)
        async with self._lock:
            if key not in self._servers:
                self._servers[key] = await self._listen(key)
            return self._servers[key][1]

    async def _listen(self, key: tuple[str, str, int]) -> tuple[asyncio.Server, str]:
        for _ in range(SERVICE_HOSTS):
            host = f"{self.ip_prefix}.{self._next % SERVICE_HOSTS}.253"
            self._next += 1
            try:
                server = await asyncio.start_server(
                    lambda r, w: self._accept(key, r, w), host, key[2], family=socket.AF_INET
                )
            except OSError:  # another homelab or test session holds it: the next one
                continue
            log.info("service %s/%s:%d is at %s:%d", key[0], key[1], key[2], host, key[2])
            return server, f"{host}:{key[2]}"
        raise OSError(f"no service address in {self.ip_prefix}.0.0/16 has port {key[2]} free")

    def _accept(
        self, key: tuple[str, str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.create_task(self._forward(key, reader, writer))
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)

    async def _forward(
        self, key: tuple[str, str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        ns, name, port = key
        target = self._rotation.pick(await endpoints(self.kube, ns, name, {"number": port}))
        try:
            if target is None:  # no Ready pod: the connection is refused, as by kube-proxy's reject rule
                return
            host, target_port = target.rsplit(":", 1)
            try:
                up_reader, up_writer = await asyncio.open_connection(host, int(target_port))
            except OSError:
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        finally:
            writer.close()

    async def close(self) -> None:
        for server, _ in self._servers.values():
            server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        for server, _ in self._servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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

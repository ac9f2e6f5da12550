"""A container's startup and readiness probes, as a kubelet runs them: HTTP GETs, TCP connects
or exec commands (in a container, through `podman exec`, with the container's own environment)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from hearth_sim import podman
from hearth_sim.pod_spec import container_port

Obj = dict[str, Any]


@dataclass
class Prober:
    container: Obj
    ip: str
    interval: float  # the kubelet's probe interval
    warn: Callable[[str], Awaitable[None]]  # a Warning "Unhealthy" Event with this message
    set_ready: Callable[[bool], Awaitable[None]]  # readiness changed: the pod's status follows
    kill: Callable[[], Awaitable[None]]  # a failed startup probe: kill the container (it restarts)
    exec_prefix: list[str] | None = None  # `podman exec <name>` when the container runs in podman
    env: dict[str, str] | None = None  # an exec probe's environment (a local process's own)

    async def run(self) -> None:
        """Startup first (readiness is not probed until it passes), then readiness for good."""
        startup = self.container.get("startupProbe")
        if startup is not None and not await self._started(startup):
            return
        probe = self.container.get("readinessProbe") or {}
        if not any(kind in probe for kind in ("httpGet", "tcpSocket", "exec")):
            await self.set_ready(True)
            return
        failures, ready = 0, False
        async with httpx.AsyncClient(timeout=1.0) as http:  # one client for an HTTP probe's GETs
            while True:
                ok, output = await self._readiness(probe, http)
                if ok != ready:
                    ready = ok
                    await self.set_ready(ok)
                if not ok:
                    failures += 1
                    if failures == int(5 / self.interval):  # once, after ~5 s
                        await self.warn(f"Readiness probe failed: {output}")
                await asyncio.sleep(self.interval)

    async def _readiness(self, probe: Obj, http: httpx.AsyncClient) -> tuple[bool, str]:
        if "httpGet" not in probe:
            return await self.check(probe)
        url = self._url(probe["httpGet"])
        try:
            return (await http.get(url)).status_code < 400, f"{url} not ready yet"
        except httpx.HTTPError:
            return False, f"{url} not ready yet"

    def _url(self, probe: Obj) -> str:
        port = container_port([self.container], probe.get("port", 8000))
        return f"http://{self.ip}:{port}{probe.get('path', '/')}"

    async def _started(self, startup: Obj) -> bool:
        """A startup probe: after `failureThreshold` failures in a row the container is killed
        (and restarted, with back-off), as a real kubelet does."""
        threshold = int(startup.get("failureThreshold", 3))
        failures = 0
        while True:
            ok, output = await self.check(startup)
            if ok:
                return True
            failures += 1
            if failures >= threshold:
                await self.warn(
                    f"Startup probe failed: {output.strip()[-300:]}; container "
                    f"{self.container.get('name')} failed startup probe, will be restarted"
                )
                await self.kill()
                return False
            await asyncio.sleep(self.interval)

    async def check(self, probe: Obj) -> tuple[bool, str]:
        timeout = float(probe.get("timeoutSeconds", 1))
        if "exec" in probe:
            command = [str(c) for c in probe["exec"].get("command") or []]
            if self.exec_prefix is not None:
                command = [*self.exec_prefix, *command]
            # In a container, `podman exec` gives the command the container's own environment.
            env = None if self.exec_prefix is not None else self.env
            code, out = await podman.run_command(command, timeout, env)
            return code == 0, out
        if "tcpSocket" in probe:
            port = container_port([self.container], probe["tcpSocket"].get("port", 0))
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(self.ip, port), timeout)
            except (OSError, TimeoutError) as exc:
                return False, f"dial tcp {self.ip}:{port}: {exc or 'timeout'}"
            writer.close()
            return True, ""
        url = self._url(probe.get("httpGet") or {})
        try:
            async with httpx.AsyncClient(timeout=timeout) as http:
                status = (await http.get(url)).status_code
        except httpx.HTTPError as exc:
            return False, f"Get {url}: {exc}"
        return status < 400, f"HTTP probe failed with statuscode: {status}"

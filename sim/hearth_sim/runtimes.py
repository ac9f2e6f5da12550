"""How a pod's main container runs, behind one small interface: as a process of this machine
(`ProcessRun`: the sim engine, llama.cpp's real server, simulated vLLM and Ollama, and Hearth's
programs where containers cannot run) or as a podman container of Hearth's image
(`ContainerRun`). What runs — the command — is pod_commands.py's; the pod's life around it
(restarts, probes, status) is containers.py's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from hearth_sim import podman, processes
from hearth_sim.processes import Process


class Runtime(Protocol):
    @property
    def exec_prefix(self) -> list[str] | None:
        """What an exec probe's command runs through (None: itself)."""
        ...

    @property
    def env(self) -> dict[str, str] | None:
        """An exec probe's environment (None: the container's own)."""
        ...

    async def start(self, argv: list[str], logfile: Path) -> tuple[Process, int]:
        """Start it, its output appended to `logfile`: the process, and its pid as a node sees it."""
        ...

    async def stop(self, proc: Process) -> None:
        """SIGTERM, SIGKILL after the grace period (at once when this is cancelled)."""
        ...

    async def kill(self, proc: Process | None) -> None:
        """SIGKILL now (a failed startup probe): it is restarted with back-off."""
        ...


Prepare = Callable[[list[str]], Awaitable[tuple[dict[str, str], int | None]]]  # argv → env, largest file


@dataclass
class ProcessRun:
    prepare: Prepare  # its environment, read anew at each start as a kubelet resolves it; its file cap
    grace: float  # the kubelet's grace period
    exec_prefix: list[str] | None = None
    env: dict[str, str] | None = field(default_factory=dict)

    async def start(self, argv: list[str], logfile: Path) -> tuple[Process, int]:
        env, file_size = await self.prepare(argv)
        self.env = env
        proc = await processes.spawn(argv, env, logfile, file_size)
        return proc, proc.pid

    async def stop(self, proc: Process) -> None:
        await processes.kill(proc, self.grace)

    async def kill(self, proc: Process | None) -> None:
        processes.kill_now(proc)


@dataclass
class ContainerRun:
    runtime: podman.Runtime
    name: str  # the container's, unique on the machine
    grace: float  # the pod's terminationGracePeriodSeconds
    env: dict[str, str] | None = None  # `podman exec` gives the command the container's own
    started: int = 0

    @property
    def exec_prefix(self) -> list[str] | None:
        return [*self.runtime.podman, "exec", self.name]

    async def start(self, argv: list[str], logfile: Path) -> tuple[Process, int]:
        if self.started:  # the last run's container may not be removed yet: its name is reused
            await self.runtime.remove(self.name)
        self.started += 1
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with logfile.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True
            )
        # The container's own process, as a node's pid namespace shows it.
        running = await self.runtime.pid(self.name, lambda: proc.returncode is None)
        return proc, running or proc.pid

    async def stop(self, proc: Process) -> None:
        await processes.stop_container(proc, self.runtime, self.name, self.grace)

    async def kill(self, proc: Process | None) -> None:
        await self.runtime.kill(self.name, "KILL")

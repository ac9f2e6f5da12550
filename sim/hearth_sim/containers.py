"""A pod's containers run as a kubelet runs them: start the pod's container (and its native
sidecars), restart it with back-off as its restartPolicy says, end a pod that is not
restarted with its termination message, stop it. Which command an image runs is
pod_commands.py's; the process or podman container it runs as, processes.py's; its probes,
probes.py's; what the pod's spec means, as pure functions, pod_spec.py's."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from hearth_sim import podman, processes
from hearth_sim.apiserver.resources import now_rfc3339
from hearth_sim.node import Node
from hearth_sim.pod_commands import command_for
from hearth_sim.pod_files import PodFiles
from hearth_sim.pod_spec import CannotRun, localize, network_env, sidecars, volume_paths
from hearth_sim.pod_status import crash_loop, pod_status
from hearth_sim.probes import Prober
from hearth_sim.runtimes import ContainerRun, ProcessRun, Runtime

Obj = dict[str, Any]
TERMINATION_LOG = "/dev/termination-log"  # a container's terminationMessagePath by default


class PodRunner:
    """One Pod's container (and its sidecars): start, probe, restart with back-off, stop."""

    def __init__(self, kubelet: Node, pod: Obj, ip: str) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.ip = ip
        self.ns = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.container = (pod["spec"].get("containers") or [{}])[0]
        self.sidecars = sidecars(pod)
        self.sidecar_procs: list[asyncio.subprocess.Process] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.ready = False
        self.runtime: Runtime | None = None  # how the main container runs, once its command is known
        self.pod_dir = kubelet.config.log_dir.parent / "pods" / f"{self.ns}_{self.name}"
        config = kubelet.config
        self.files = PodFiles(
            kubelet.kube, pod, ip, self.pod_dir, config.volumes_dir, config.api, kubelet.services
        )
        self.mounts = self._volume_paths(self.container)
        for container in [self.container, *self.sidecars]:  # a volume exists once it is mounted
            for folder in self._volume_paths(container).values():
                Path(folder).mkdir(parents=True, exist_ok=True)
        self.termination_log = processes.termination_log(self.pod_dir)
        self.mounts[str(self.container.get("terminationMessagePath", TERMINATION_LOG))] = str(
            self.termination_log
        )
        self.task = asyncio.create_task(self._run(), name=f"pod {self.ns}/{self.name}")

    def _volume_paths(self, container: Obj) -> dict[str, str]:
        return volume_paths(self.pod, container, self.kubelet.config.volumes_dir, self.pod_dir)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.returncode is None else None

    async def _status(self, state: Obj, ready: bool, phase: str = "Running", last: Obj | None = None) -> None:
        status = pod_status(
            self.pod,
            self.ip,
            state,
            ready,
            stamp=now_rfc3339(),
            phase=phase,
            restarts=self.restarts,
            last=last,
            sidecars=[(c, p.returncode) for c, p in zip(self.sidecars, self.sidecar_procs, strict=False)],
        )
        await self.kubelet.patch_pod_status(self.ns, self.name, status)

    async def _run(self) -> None:
        k = self.kubelet
        try:
            for sidecar in self.sidecars:
                await self._start_sidecar(sidecar)
            await k.event(self.pod, "Normal", "Pulling", f'Pulling image "{self.container.get("image")}"')
            command = await command_for(k, self.container, self.ip, self.mounts, main=True)
            argv = command.argv
            if command.contained is not None:
                k.contained[self.pod["metadata"]["uid"]] = f"{self.ns}/{self.name}"
                where = (self.files, self.ip, self.termination_log, k.kube)
                argv = await processes.container_argv(
                    command.contained, self.pod, self.container_name, argv, *where
                )
                self.runtime = ContainerRun(command.contained, self.container_name, self._grace())
            else:
                self.runtime = self._process_run(self.container, command.env, self.mounts)
        except CannotRun as exc:
            msg = f"image cannot run in the simulated homelab: {exc}"
            await k.event(self.pod, "Warning", "Failed", msg)
            await self._status({"waiting": {"reason": "ErrImagePull", "message": msg}}, False, "Pending")
            return
        except podman.CannotCreate as exc:
            msg = f"Error: {exc}"
            await k.event(self.pod, "Warning", "Failed", msg)
            waiting = {"reason": "CreateContainerConfigError", "message": str(exc)}
            await self._status({"waiting": waiting}, False, "Pending")
            return
        await k.event(self.pod, "Normal", "Pulled", "Container image is present on the node")
        last: Obj = {}
        while True:
            await self._start(argv)
            await k.event(self.pod, "Normal", "Started", f"Started container {self.container.get('name')}")
            await self._status({"running": {"startedAt": now_rfc3339()}}, False, last=last)
            assert self.proc is not None
            probe = asyncio.create_task(self._prober().run())
            try:
                code = await self.proc.wait()
            finally:
                probe.cancel()
                # asyncio.wait, not `suppress(CancelledError): await probe`: a stop() that
                # cancels this task while it waits here must not be swallowed with the probe's
                # own cancellation (the crash loop would go on, and stop() would wait forever).
                await asyncio.wait({probe})
            self.ready = False
            policy = self.pod["spec"].get("restartPolicy", "Always")
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                await self._stop_sidecars()  # a finished pod's sidecars are stopped, then it ends
                await self._terminated(code)
                return
            self.restarts += 1
            delay = min(k.config.backoff_base * 2 ** (self.restarts - 1), 300.0)
            last, waiting = crash_loop(code, delay, now_rfc3339())
            name = self.container.get("name")
            message = f"Back-off restarting failed container {name} (exit code {code}, "
            message += f"restarting in {delay:g}s)"
            await k.event(self.pod, "Warning", "BackOff", message)
            await self._status(waiting, False, last=last)
            await asyncio.sleep(delay)

    async def _terminated(self, code: int) -> None:
        """A pod that is not restarted (a Job's): Succeeded or Failed, with its termination
        message: what it wrote at terminationMessagePath, else (FallbackToLogsOnError) the tail of
        its log when it failed."""
        fallback = code != 0 and self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        message = processes.termination_message(self.termination_log, self._logfile if fallback else None)
        await self.kubelet.event(
            self.pod,
            "Normal" if code == 0 else "Warning",
            "Completed" if code == 0 else "Failed",
            f"Container {self.container.get('name')} exited with code {code}",
        )
        terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "message": message,
            "finishedAt": now_rfc3339(),
        }
        await self._status({"terminated": terminated}, False, "Succeeded" if code == 0 else "Failed")

    @property
    def _logfile(self) -> Path:
        return self.kubelet.config.log_dir / f"{self.ns}_{self.name}.log"

    async def _start_sidecar(self, sidecar: Obj) -> None:
        """A native sidecar: started before the pod's container, running until the pod ends."""
        mounts = self._volume_paths(sidecar)
        command = await command_for(self.kubelet, sidecar, self.ip, mounts, main=False)
        logfile = self.kubelet.config.log_dir / f"{self.ns}_{self.name}.{sidecar.get('name')}.log"
        proc, _ = await self._process_run(sidecar, command.env, mounts).start(command.argv, logfile)
        self.sidecar_procs.append(proc)
        await self.kubelet.event(self.pod, "Normal", "Started", f"Started container {sidecar.get('name')}")

    async def _stop_sidecars(self) -> None:
        for proc in self.sidecar_procs:
            await processes.kill(proc, self.kubelet.config.grace_seconds)

    async def _start(self, argv: list[str]) -> None:
        assert self.runtime is not None
        self.proc, self.kubelet.pids[self.pod["metadata"]["uid"]] = await self.runtime.start(
            argv, self._logfile
        )

    @property
    def container_name(self) -> str:
        """Unique on the machine: a demo and a test run may both run a pod of this name."""
        return f"hearth-sim-{os.getpid()}-{self.ns}-{self.name}"[:120]

    def _process_run(self, container: Obj, runtime_env: dict[str, str], mounts: dict[str, str]) -> ProcessRun:
        """A container as a local process, with its environment as a kubelet gives it."""

        async def prepare(argv: list[str]) -> tuple[dict[str, str], int | None]:
            port = next((p.get("containerPort") for p in container.get("ports") or []), 8000)
            config = self.kubelet.config
            env = {
                **os.environ,
                **runtime_env,
                **config.extra_env,
                "HEARTH_SIM_TIME_SCALE": str(config.time_scale),
            }
            env.update(await self.files.env(container, lambda v: localize(v, self.ip, mounts)))
            if argv[0].endswith(("hearth-operator", "hearth-router")):
                kube, files = self.kubelet.kube, self.files
                env.update(await processes.control_plane_env(kube, files, self.pod, self.pod_dir, self.ip))
            # Network facts come last: every pod binds its own loopback IP, whatever it asks for.
            env.update(network_env(self.pod, self.ip, port))
            return env, await processes.volume_limit(self.kubelet.kube, self.pod, container)

        return ProcessRun(prepare, self._grace())

    def _grace(self) -> float:
        """The pod's terminationGracePeriodSeconds (a router drains its streams in it), or the
        kubelet's own, short default where the pod does not say."""
        given = self.pod["spec"].get("terminationGracePeriodSeconds")
        return float(given) if given is not None else self.kubelet.config.grace_seconds

    def _prober(self) -> Prober:
        async def warn(message: str) -> None:
            await self.kubelet.event(self.pod, "Warning", "Unhealthy", message)

        async def set_ready(ready: bool) -> None:
            self.ready = ready
            await self._status({"running": {"startedAt": now_rfc3339()}}, ready)

        runtime = self.runtime
        assert runtime is not None

        async def kill() -> None:
            await runtime.kill(self.proc)

        interval = self.kubelet.config.probe_interval
        return Prober(
            self.container, self.ip, interval, warn, set_ready, kill, runtime.exec_prefix, runtime.env
        )

    async def stop(self) -> None:
        """Stop the container: SIGTERM, SIGKILL after the grace period — and SIGKILL at once if
        this stop is itself cancelled (a kubelet shutting down), so no process outlives it."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        try:
            if self.proc is not None and self.runtime is not None:
                await self.runtime.stop(self.proc)
        finally:
            for proc in self.sidecar_procs:  # after the container, as a kubelet stops sidecars
                await processes.kill(proc, self.kubelet.config.grace_seconds)
            self.kubelet.pids.pop(self.pod["metadata"]["uid"], None)

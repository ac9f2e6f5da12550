"""A pod's containers run as a kubelet runs them: which command an image runs here (a local
process, or a container of Hearth's image through podman), and the runner that starts it,
probes its readiness, restarts it with back-off and stops it. What a pod's spec means here, as
pure functions, is in pod_spec.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import yaml

from hearth_sim import podman
from hearth_sim.apiserver.resources import now_rfc3339
from hearth_sim.kube import ApiError, kubeconfig
from hearth_sim.llamacpp import IMAGE_REPO as LLAMACPP_REPO
from hearth_sim.llamacpp import is_server_image
from hearth_sim.node import Node
from hearth_sim.pod_files import PodFiles
from hearth_sim.pod_spec import (
    HEARTH_IMAGE_REPO,
    CannotRun,
    claim_capacity,
    container_port,
    hearth_command,
    image_repo,
    listen_env,
    localize,
    sidecars,
    volume_paths,
)

Obj = dict[str, Any]
# Hearth's programs that run as containers of its image where the machine can run them (the sim
# engine stays a process, like every engine: the image is what this is about, not the engines).
CONTAINED_COMMANDS = ("hearth-operator", "hearth-router", "hearth-fetch")
TERMINATION_MESSAGE_BYTES = 2048  # a kubelet's cap on FallbackToLogsOnError's log tail
TERMINATION_LOG = "/dev/termination-log"  # a container's terminationMessagePath by default
# Engines that cannot run here, simulated with their own command line and behaviour while loading.
SIMULATED_IMAGES = {"vllm/vllm-openai": "hearth_sim.vllm", "ollama/ollama": "hearth_sim.ollama"}
SIMULATED_DEFAULT_ARGS = {"ollama/ollama": ["serve"]}  # the image's CMD


def tool_shims(folder: Path) -> Path:
    """A folder of the command-line tools simulated images hold (`ollama`), for exec probes:
    put first on such a container's PATH, `ollama pull …` runs the simulated client."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "ollama"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m hearth_sim.ollama "$@"\n')
    shim.chmod(0o755)
    return folder


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
        self.runtime_env: dict[str, str] = {}
        self.env: dict[str, str] = {}  # the running process's environment, for exec probes
        self.contained: podman.Runtime | None = None  # set when the container runs in podman
        self.pod_dir = kubelet.config.log_dir.parent / "pods" / f"{self.ns}_{self.name}"
        config = kubelet.config
        self.files = PodFiles(kubelet.kube, pod, ip, self.pod_dir, config.volumes_dir, config.api)
        self.mounts = self._volume_paths(self.container)
        for container in [self.container, *self.sidecars]:  # a volume exists once it is mounted
            for folder in self._volume_paths(container).values():
                Path(folder).mkdir(parents=True, exist_ok=True)
        # The termination message file a kubelet mounts at terminationMessagePath.
        self.termination_log = self.pod_dir / "termination-log"
        self.termination_log.parent.mkdir(parents=True, exist_ok=True)
        self.termination_log.write_text("")
        self.termination_log.chmod(0o666)  # a container's user writes it, whoever that is
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
        stamp = now_rfc3339()
        cond = "True" if ready else "False"
        status = {
            "phase": phase,
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "hostIP": self.ip,
            "startTime": self.pod["metadata"].get("creationTimestamp", stamp),
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": cond},
                {"type": "Ready", "status": cond, "lastTransitionTime": stamp},
            ],
            "containerStatuses": [
                {
                    "name": self.container.get("name", "main"),
                    "image": self.container.get("image", ""),
                    "ready": ready,
                    "started": "running" in state,
                    "restartCount": self.restarts,
                    "state": state,
                    "lastState": last or {},
                }
            ],
        }
        if self.sidecars:
            status["initContainerStatuses"] = [
                {
                    "name": c.get("name", "sidecar"),
                    "image": c.get("image", ""),
                    "ready": proc.returncode is None,
                    "started": proc.returncode is None,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": stamp}}
                    if proc.returncode is None
                    else {"terminated": {"exitCode": proc.returncode, "finishedAt": stamp}},
                }
                for c, proc in zip(self.sidecars, self.sidecar_procs, strict=False)
            ]
        await self.kubelet.patch_pod_status(self.ns, self.name, status)

    async def _run(self) -> None:
        k = self.kubelet
        try:
            for sidecar in self.sidecars:
                await self._start_sidecar(sidecar)
            await k.event(self.pod, "Normal", "Pulling", f'Pulling image "{self.container.get("image")}"')
            argv, self.runtime_env = await self._command(self.container, self.mounts)
            if self.contained is not None:
                argv = await self._container_argv(argv)
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
            probe = asyncio.create_task(self._probe())
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
            last = {
                "terminated": {
                    "exitCode": code,
                    "reason": "Error" if code else "Completed",
                    "finishedAt": now_rfc3339(),
                }
            }
            delay = min(k.config.backoff_base * 2 ** (self.restarts - 1), 300.0)
            await k.event(
                self.pod,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {self.container.get('name')} "
                f"(exit code {code}, restarting in {delay:g}s)",
            )
            await self._status(
                {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {delay:g}s restarting failed container",
                    }
                },
                False,
                last=last,
            )
            await asyncio.sleep(delay)

    async def _terminated(self, code: int) -> None:
        """A pod that is not restarted (a Job's): Succeeded or Failed, with its termination
        message: what it wrote at terminationMessagePath, else (FallbackToLogsOnError) the tail of
        its log when it failed."""
        message = ""
        with contextlib.suppress(OSError):
            message = self.termination_log.read_text(errors="replace")[: TERMINATION_MESSAGE_BYTES * 2]
        if not message and code and self.container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            with contextlib.suppress(OSError):
                tail = self._logfile.read_bytes()[-TERMINATION_MESSAGE_BYTES:]
                message = tail.decode(errors="replace")
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

    async def _command(self, container: Obj, mounts: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        """What runs for a container here: Hearth's image as its console scripts, llama.cpp's
        server image as the real llama.cpp server with the args the operator rendered."""
        image = str(container.get("image", ""))

        def local(value: str) -> str:
            return localize(value, self.ip, mounts)

        try:
            if image.split(":")[0] == HEARTH_IMAGE_REPO:
                argv = hearth_command(container)
                contained = await self.kubelet.container_runtime() if container is self.container else None
                if contained is not None and Path(argv[0]).name in CONTAINED_COMMANDS:
                    self.contained = contained
                    self.kubelet.contained[self.pod["metadata"]["uid"]] = f"{self.ns}/{self.name}"
                    given = [*(container.get("command") or []), *(container.get("args") or [])]
                    return [localize(a, self.ip, {}) for a in given], {}
                return [argv[0], *(local(a) for a in argv[1:])], {}
            if is_server_image(image) and not container.get("command"):
                runtime, note = await self.kubelet.llamacpp()
                if runtime is None:
                    raise CannotRun(note)
                return runtime.argv([local(a) for a in container.get("args") or []]), runtime.env
            module = SIMULATED_IMAGES.get(image_repo(image))
            if module is not None and not container.get("command"):
                given = container.get("args") or SIMULATED_DEFAULT_ARGS.get(image_repo(image), [])
                shims = tool_shims(self.kubelet.config.log_dir.parent / "bin")
                path = f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"
                return [sys.executable, "-m", module, *(local(a) for a in given)], {"PATH": path}
            raise CannotRun(
                f"only {HEARTH_IMAGE_REPO} (hearth-sim, hearth-operator, hearth-router), "
                f"{LLAMACPP_REPO}:server* (llama.cpp's server, from PyPI) and, simulated, "
                f"{' and '.join(SIMULATED_IMAGES)} run here"
            )
        except CannotRun as exc:
            raise CannotRun(f"{container.get('name')} ({image!r}): {exc}") from exc

    async def _start_sidecar(self, sidecar: Obj) -> None:
        """A native sidecar: started before the pod's container, running until the pod ends."""
        mounts = self._volume_paths(sidecar)
        argv, runtime_env = await self._command(sidecar, mounts)
        logfile = self.kubelet.config.log_dir / f"{self.ns}_{self.name}.{sidecar.get('name')}.log"
        proc, _ = await self._spawn(sidecar, argv, runtime_env, mounts, logfile)
        self.sidecar_procs.append(proc)
        await self.kubelet.event(self.pod, "Normal", "Started", f"Started container {sidecar.get('name')}")

    async def _stop_sidecars(self) -> None:
        for proc in self.sidecar_procs:
            await self._kill(proc)

    async def _start(self, argv: list[str]) -> None:
        uid = self.pod["metadata"]["uid"]
        if self.contained is not None:
            if self.restarts:  # the last run's container may not be removed yet: its name is reused
                await self.contained.remove(self.container_name)
            self._logfile.parent.mkdir(parents=True, exist_ok=True)
            with self._logfile.open("ab") as out:
                self.proc = await asyncio.create_subprocess_exec(
                    *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True
                )
            # The container's own process, as a node's pid namespace shows it.
            proc = self.proc
            running = await self.contained.pid(self.container_name, lambda: proc.returncode is None)
            self.kubelet.pids[uid] = running or proc.pid
            return
        self.proc, self.env = await self._spawn(
            self.container, argv, self.runtime_env, self.mounts, self._logfile
        )
        self.kubelet.pids[uid] = self.proc.pid

    @property
    def container_name(self) -> str:
        """Unique on the machine: a demo and a test run may both run a pod of this name."""
        return f"hearth-sim-{os.getpid()}-{self.ns}-{self.name}"[:120]

    async def _container_argv(self, argv: list[str]) -> list[str]:
        """`podman run` of the main container: its env, volumes and securityContext as a
        kubelet gives them (see podman.py)."""
        assert self.contained is not None
        sec = podman.security(self.pod["spec"], self.container, self.contained.image_user)
        labels = {
            **self.contained.labels,
            "io.kubernetes.pod.namespace": self.ns,
            "io.kubernetes.pod.name": self.name,
        }
        return podman.run_argv(
            podman=self.contained.podman,
            name=self.container_name,
            image=str(self.container.get("image")),
            argv=argv,
            entrypoint=bool(self.container.get("command")),
            env={
                **self.files.service_env(),
                **await self.files.env(self.container, lambda v: localize(v, self.ip, {})),
                **listen_env(self.ip),
            },
            mounts=await self.files.mounts(self.container, self.termination_log),
            sec=sec,
            labels=labels,
            file_size=await self._volume_limit(self.container),
        )

    async def _spawn(
        self,
        container: Obj,
        argv: list[str],
        runtime_env: dict[str, str],
        mounts: dict[str, str],
        logfile: Path,
    ) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
        port = next((p.get("containerPort") for p in container.get("ports") or []), 8000)
        env = {
            **os.environ,
            **runtime_env,
            **self.kubelet.config.extra_env,
            "HEARTH_SIM_TIME_SCALE": str(self.kubelet.config.time_scale),
        }
        env.update(await self.files.env(container, lambda v: localize(v, self.ip, mounts)))
        if argv[0].endswith(("hearth-operator", "hearth-router")):
            env.update(await self._control_plane_env())
        # Network facts come last: every pod binds its own loopback IP, whatever it asks for.
        env.update(
            {
                "HEARTH_SIM_HOST": self.ip,
                "HEARTH_SIM_PORT": str(port),
                "POD_IP": self.ip,
                "POD_NAME": self.name,
                "POD_NAMESPACE": self.ns,
                "NODE_NAME": self.pod["spec"].get("nodeName", ""),
            }
        )
        logfile.parent.mkdir(parents=True, exist_ok=True)
        limit = await self._volume_limit(container)
        with logfile.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)))
                if limit
                else None,
            )
        return proc, env

    async def _volume_limit(self, container: Obj) -> int | None:
        """The capacity of the claims a container writes to, if any (see claim_capacity)."""
        claims = {}
        for v in self.pod["spec"].get("volumes") or []:
            name = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if name:
                with contextlib.suppress(ApiError):
                    claims[name] = await self.kubelet.kube.get("v1", "persistentvolumeclaims", self.ns, name)
        return claim_capacity(self.pod, container, claims)

    async def _control_plane_env(self) -> dict[str, str]:
        """What a kubelet gives Hearth's own pods: the API server's address and their
        ServiceAccount's credentials — here a kubeconfig of the pod's own (there is no
        /var/run/secrets to mount into a local process) — and the pod's address to listen on."""
        account = self.pod["spec"].get("serviceAccountName") or "default"
        server = str(self.kubelet.kube.http.base_url).rstrip("/")
        token = await self.files.token(account)
        config = kubeconfig(server, self.ns, f"system:serviceaccount:{self.ns}:{account}", token)
        path = self.pod_dir / "kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return {"KUBECONFIG": str(path), **listen_env(self.ip)}

    async def _probe(self) -> None:
        startup = self.container.get("startupProbe")
        if startup is not None and not await self._started(startup):
            return
        probe = (self.container.get("readinessProbe") or {}).get("httpGet")
        if probe is None:
            self.ready = True
            await self._status({"running": {"startedAt": now_rfc3339()}}, True)
            return
        url = self._url(probe)
        failures = 0
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                try:
                    ok = (await http.get(url)).status_code < 400
                except httpx.HTTPError:
                    ok = False
                if ok != self.ready:
                    self.ready = ok
                    await self._status({"running": {"startedAt": now_rfc3339()}}, ok)
                if not ok:
                    failures += 1
                    if failures == int(5 / self.kubelet.config.probe_interval):  # once, after ~5 s
                        await self.kubelet.event(
                            self.pod, "Warning", "Unhealthy", f"Readiness probe failed: {url} not ready yet"
                        )
                await asyncio.sleep(self.kubelet.config.probe_interval)

    def _url(self, probe: Obj) -> str:
        port = container_port([self.container], probe.get("port", 8000))
        return f"http://{self.ip}:{port}{probe.get('path', '/')}"

    async def _started(self, startup: Obj) -> bool:
        """A startup probe: readiness is not probed until it passes; after `failureThreshold`
        failures in a row the container is killed (and restarted, with back-off), as a real
        kubelet does. Exec probes run the command with the container's environment."""
        threshold = int(startup.get("failureThreshold", 3))
        failures = 0
        while True:
            ok, output = await self._check(startup)
            if ok:
                return True
            failures += 1
            if failures >= threshold:
                await self.kubelet.event(
                    self.pod,
                    "Warning",
                    "Unhealthy",
                    f"Startup probe failed: {output.strip()[-300:]}; container "
                    f"{self.container.get('name')} failed startup probe, will be restarted",
                )
                if self.contained is not None:
                    await self.contained.kill(self.container_name, "KILL")
                elif self.proc is not None and self.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                return False
            await asyncio.sleep(self.kubelet.config.probe_interval)

    async def _check(self, probe: Obj) -> tuple[bool, str]:
        timeout = float(probe.get("timeoutSeconds", 1))
        if "exec" in probe:
            command = [str(c) for c in probe["exec"].get("command") or []]
            if self.contained is not None:
                command = [*self.contained.podman, "exec", self.container_name, *command]
            # In a container, `podman exec` gives the command the container's own environment.
            env = None if self.contained is not None else self.env
            code, out = await podman.run_command(command, timeout, env)
            return code == 0, out
        url = self._url(probe.get("httpGet") or {})
        try:
            async with httpx.AsyncClient(timeout=timeout) as http:
                status = (await http.get(url)).status_code
        except httpx.HTTPError as exc:
            return False, f"Get {url}: {exc}"
        return status < 400, f"HTTP probe failed with statuscode: {status}"

    async def stop(self) -> None:
        """Stop the container: SIGTERM, SIGKILL after the grace period — and SIGKILL at once if
        this stop is itself cancelled (a kubelet shutting down), so no process outlives it."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        try:
            if self.proc is not None and self.contained is not None:
                await self._stop_container(self.proc, self.contained)
            elif self.proc is not None:
                await self._kill(self.proc)
        finally:
            for proc in self.sidecar_procs:  # after the container, as a kubelet stops sidecars
                await self._kill(proc)
            self.kubelet.pids.pop(self.pod["metadata"]["uid"], None)

    async def _stop_container(self, proc: asyncio.subprocess.Process, runtime: podman.Runtime) -> None:
        """SIGTERM to the container, SIGKILL after the pod's terminationGracePeriodSeconds (or at
        once when this stop is cancelled); then the container is removed."""
        grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
        try:
            if proc.returncode is None:
                await runtime.kill(self.container_name, "TERM")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), grace)
        finally:
            if proc.returncode is None:
                await asyncio.shield(runtime.kill(self.container_name, "KILL"))
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.shield(runtime.remove(self.container_name))

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM, then SIGKILL after the grace period or when this is cancelled."""
        if proc.returncode is not None:
            return
        try:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.kubelet.config.grace_seconds)
            except TimeoutError:
                pass
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

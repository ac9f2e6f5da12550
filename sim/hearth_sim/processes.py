"""A pod's container as a process of this machine, or as a podman container: start it with
its environment as a kubelet gives it, and stop it as a kubelet does (SIGTERM, SIGKILL after
the grace period — at once when the stop is itself cancelled, so nothing outlives a kubelet)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
from pathlib import Path
from typing import Any

import yaml

from hearth_sim import podman
from hearth_sim.kube import ApiError, Kube, kubeconfig
from hearth_sim.pod_files import PodFiles
from hearth_sim.pod_spec import claim_capacity, listen_env, localize

Obj = dict[str, Any]
Process = asyncio.subprocess.Process
TERMINATION_MESSAGE_BYTES = 2048  # a kubelet's cap on FallbackToLogsOnError's log tail


def termination_log(pod_dir: Path) -> Path:
    """The termination message file a kubelet mounts at terminationMessagePath, empty."""
    path = pod_dir / "termination-log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    path.chmod(0o666)  # a container's user writes it, whoever that is
    return path


def termination_message(written: Path, log: Path | None) -> str:
    """What a finished container wrote at terminationMessagePath, else the tail of its `log`
    (given for FallbackToLogsOnError when it failed)."""
    message = ""
    with contextlib.suppress(OSError):
        message = written.read_text(errors="replace")[: TERMINATION_MESSAGE_BYTES * 2]
    if not message and log is not None:
        with contextlib.suppress(OSError):
            message = log.read_bytes()[-TERMINATION_MESSAGE_BYTES:].decode(errors="replace")
    return message


async def spawn(argv: list[str], env: dict[str, str], logfile: Path, file_size: int | None) -> Process:
    """Start a local process in a session of its own (so a stop reaches its children), its
    output appended to `logfile`, its files capped at `file_size` bytes (a claim's capacity)."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size)))
            if file_size
            else None,
        )


async def kill(proc: Process, grace: float) -> None:
    """SIGTERM, then SIGKILL after the grace period or when this is cancelled."""
    if proc.returncode is not None:
        return
    try:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), grace)
    finally:
        kill_now(proc)


def kill_now(proc: Process | None) -> None:
    if proc is not None and proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


async def stop_container(proc: Process, runtime: podman.Runtime, name: str, grace: float) -> None:
    """SIGTERM to the container, SIGKILL after the grace period (or at once when this stop is
    cancelled); then the container is removed."""
    try:
        if proc.returncode is None:
            await runtime.kill(name, "TERM")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
    finally:
        if proc.returncode is None:
            await asyncio.shield(runtime.kill(name, "KILL"))
            kill_now(proc)
        await asyncio.shield(runtime.remove(name))


async def volume_limit(kube: Kube, pod: Obj, container: Obj) -> int | None:
    """The capacity of the claims a container writes to, if any (see claim_capacity)."""
    ns = pod["metadata"]["namespace"]
    claims = {}
    for v in pod["spec"].get("volumes") or []:
        name = (v.get("persistentVolumeClaim") or {}).get("claimName")
        if name:
            with contextlib.suppress(ApiError):
                claims[name] = await kube.get("v1", "persistentvolumeclaims", ns, name)
    return claim_capacity(pod, container, claims)


async def control_plane_env(kube: Kube, files: PodFiles, pod: Obj, pod_dir: Path, ip: str) -> dict[str, str]:
    """What a kubelet gives Hearth's own pods: the API server's address and their
    ServiceAccount's credentials — here a kubeconfig of the pod's own (there is no
    /var/run/secrets to mount into a local process) — and the pod's address to listen on."""
    ns = pod["metadata"]["namespace"]
    account = pod["spec"].get("serviceAccountName") or "default"
    server = str(kube.http.base_url).rstrip("/")
    token = await files.token(account)
    config = kubeconfig(server, ns, f"system:serviceaccount:{ns}:{account}", token)
    path = pod_dir / "kubeconfig"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return {"KUBECONFIG": str(path), **listen_env(ip)}


async def container_argv(
    runtime: podman.Runtime,
    pod: Obj,
    name: str,
    argv: list[str],
    files: PodFiles,
    ip: str,
    termination_log: Path,
    kube: Kube,
) -> list[str]:
    """`podman run` of a pod's main container: its env, volumes and securityContext as a
    kubelet gives them (see podman.py)."""
    container = (pod["spec"].get("containers") or [{}])[0]
    # First, as a kubelet does: a security context the image cannot honour is refused before
    # any volume, token or Secret is set up for it.
    sec = podman.security(pod["spec"], container, runtime.image_user)
    labels = {
        **runtime.labels,
        "io.kubernetes.pod.namespace": pod["metadata"]["namespace"],
        "io.kubernetes.pod.name": pod["metadata"]["name"],
    }
    return podman.run_argv(
        podman=runtime.podman,
        name=name,
        image=str(container.get("image")),
        argv=argv,
        entrypoint=bool(container.get("command")),
        env={
            **files.service_env(),
            **await files.env(container, lambda v: localize(v, ip, {})),
            **listen_env(ip),
        },
        mounts=await files.mounts(container, termination_log),
        sec=sec,
        labels=labels,
        file_size=await volume_limit(kube, pod, container),
    )

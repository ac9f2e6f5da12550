"""Hearth's own pods as real containers: the `podman run` a kubelet's container runtime would
do for a pod's container, from its spec (pure), and the runtime found once on this machine.

What a container gets is what a kubelet gives it: its command and args, its env, its volumes
at their mount paths (read-only where asked, Secrets and ConfigMaps as files, the ServiceAccount
token and CA at the standard path), its securityContext (user and group, non-root, read-only
root, no privilege escalation, capabilities), its own address and its ports. The homelab has no
network namespaces: containers share the host's loopback (`--network host`) and are told their
pod IP to listen on, as the process-run pods are.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hearth_sim import image as image_sources

log = logging.getLogger("hearth.sim.podman")
Obj = dict[str, Any]

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
LABEL = "dev.hearth.sim.kubelet"  # the kubelet's pid: containers a dead kubelet left are removed
# The kernel refuses to raise these limits inside this machine's containers unless both are set.
ULIMITS = ("nofile=1024:1024", "nproc=1024:1024")
# Every container here: the host's loopback (no network namespaces), never a pull, those limits.
HOST_RUN = ("--network", "host", "--pull", "never", *(f for u in ULIMITS for f in ("--ulimit", u)))


class CannotCreate(Exception):
    """The container's config cannot be honoured (CreateContainerConfigError); says why."""


@dataclass(frozen=True)
class Mount:
    host: str
    path: str
    read_only: bool = False


@dataclass(frozen=True)
class Security:
    """A container's effective securityContext: the pod's, overridden by the container's."""

    user: int | None = None
    group: int | None = None
    groups: tuple[int, ...] = ()  # fsGroup and supplementalGroups
    read_only_root: bool = False
    no_new_privileges: bool = False
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()


def security(pod_spec: Obj, container: Obj, image_user: str = "") -> Security:
    """The securityContext a kubelet applies, checked as it checks it: runAsNonRoot with a
    user that is (or, unset, an image whose USER is) root is refused."""
    pod = pod_spec.get("securityContext") or {}
    own = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return own[key] if key in own else pod.get(key)

    user, group = pick("runAsUser"), pick("runAsGroup")
    if pick("runAsNonRoot"):
        image_uid = image_user.split(":", 1)[0]
        if user == 0 or (user is None and image_uid in ("", "0", "root")):
            raise CannotCreate("container has runAsNonRoot and image will run as root")
    groups = [pod["fsGroup"]] if "fsGroup" in pod else []
    groups += list(pod.get("supplementalGroups") or [])
    caps = own.get("capabilities") or {}
    return Security(
        user=user,
        group=group,
        groups=tuple(int(g) for g in groups),
        read_only_root=bool(own.get("readOnlyRootFilesystem")),
        # A kubelet sets no_new_privs unless allowPrivilegeEscalation is true (or privileged).
        no_new_privileges=own.get("allowPrivilegeEscalation") is False,
        cap_drop=tuple(caps.get("drop") or ()),
        cap_add=tuple(caps.get("add") or ()),
    )


def run_argv(
    *,
    podman: list[str],
    name: str,
    image: str,
    argv: list[str],
    entrypoint: bool,
    env: dict[str, str],
    mounts: list[Mount],
    sec: Security,
    labels: dict[str, str],
    file_size: int | None = None,
) -> list[str]:
    """`podman run` for one container, attached (its output is the pod's log; its exit code the
    container's). `entrypoint`: argv's first word replaces the image's ENTRYPOINT, as a pod's
    `command` does; otherwise argv replaces the image's CMD (a pod's `args` alone)."""
    out = [*podman, "run", "--rm", "--name", name, *HOST_RUN]
    if file_size:  # the volume's capacity, as the process-run pods get it (RLIMIT_FSIZE)
        out += ["--ulimit", f"fsize={file_size}:{file_size}"]
    for key, value in sorted(labels.items()):
        out += ["--label", f"{key}={value}"]
    out += security_flags(sec)
    for key, value in env.items():
        out += ["--env", f"{key}={value}"]
    for m in mounts:
        out += ["--volume", f"{m.host}:{m.path}:{'ro' if m.read_only else 'rw'}"]
    if entrypoint:
        out += ["--entrypoint", argv[0], image, *argv[1:]]
    else:
        out += [image, *argv]
    return out


async def run_command(argv: list[str], deadline: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    """A command's exit code and output (stdout and stderr), killed past `deadline` seconds
    (code -1, the output saying so)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), deadline)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"command timed out after {deadline:g}s"
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


def security_flags(sec: Security) -> list[str]:
    """The `podman run` flags of a securityContext."""
    out: list[str] = []
    if sec.user is not None or sec.group is not None:
        user = str(sec.user) if sec.user is not None else ""
        out += ["--user", f"{user}:{sec.group}" if sec.group is not None else user]
    for g in sec.groups:
        out += ["--group-add", str(g)]
    if sec.read_only_root:
        # Podman would mount tmpfs on /tmp, /run and /var/tmp of a read-only container; a
        # kubelet mounts nothing the pod does not ask for.
        out += ["--read-only", "--read-only-tmpfs=false"]
    if sec.no_new_privileges:
        out += ["--security-opt", "no-new-privileges"]
    for cap in sec.cap_drop:
        out += ["--cap-drop", cap]
    for cap in sec.cap_add:
        out += ["--cap-add", cap]
    return out


@dataclass
class Runtime:
    """Podman with runc on this machine, the user Hearth's image runs as, and the labels that
    mark this kubelet's containers."""

    podman: list[str]
    image_user: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    async def run(self, *args: str, deadline: float = 30.0) -> tuple[int, str]:
        return await run_command([*self.podman, *args], deadline)

    async def kill(self, name: str, signal: str) -> None:
        await self.run("kill", "--signal", signal, name, deadline=10)

    async def remove(self, name: str) -> None:
        await self.run("rm", "--force", "--time", "0", name, deadline=30)

    async def pid(self, name: str, running: Callable[[], bool]) -> int | None:
        """The host pid of the container's first process, once it runs (a SIGKILL of it is the
        container's process killed, as on a node); None if it ended first."""
        for _ in range(100):
            if not running():
                return None
            code, out = await self.run("inspect", "--format", "{{.State.Pid}}", name, deadline=10)
            if code == 0 and out.strip().isdigit() and int(out.strip()) > 0:
                return int(out.strip())
            await asyncio.sleep(0.05)  # created, not yet started: podman has no event to wait on
        return None

    async def sweep(self, alive: Callable[[int], bool]) -> None:
        """Remove the containers of kubelets that are gone (a test run killed mid-way)."""
        code, out = await self.run("ps", "--all", "--filter", f"label={LABEL}", "--format", "json")
        if code != 0:
            return
        for entry in json.loads(out or "[]"):
            owner = str((entry.get("Labels") or {}).get(LABEL, ""))
            if owner.isdigit() and not alive(int(owner)):
                for name in entry.get("Names") or []:
                    await self.remove(name)


async def find_runtime(image: str, owner_pid: int) -> tuple[Runtime | None, str]:
    """Podman (with runc, where crun cannot run) and Hearth's image built into its store, tried
    with one container; or None and why not (the kubelet then runs Hearth's pods as processes)."""
    exe = shutil.which("podman")
    if exe is None:
        return None, "podman is not installed"
    podman = [exe, "--runtime", "runc"] if shutil.which("runc") else [exe]
    runtime = Runtime(podman, labels={LABEL: str(owner_pid)})
    facts = "{{.Config.User}}|{{index .Config.Labels " + f'"{image_sources.LABEL}"' + "}}"
    code, out = await runtime.run("image", "inspect", "--format", facts, image)
    if code != 0:
        return None, f"{image} is not built here (make image)"
    runtime.image_user, _, built_from = out.strip().partition("|")
    if built_from != (wanted := image_sources.source_digest()):
        return (
            None,
            f"{image} is built from other sources ({built_from or 'unknown'}, not {wanted}): make image",
        )
    code, out = await runtime.run("run", "--rm", *HOST_RUN, image, "true", deadline=60)
    if code != 0:
        return None, f"podman cannot run {image} here: {out.strip()[-300:]}"
    return runtime, f"{image} through {' '.join(podman)}"

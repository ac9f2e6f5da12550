"""What a pod's spec means in the simulated homelab, as pure functions: which command Hearth's
image runs, where a container's volumes are on this machine, a claim's capacity, how an
address in an arg becomes the pod's own, a port by name, a pod's native sidecars."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hearth_api.model_deployment import HEARTH_IMAGE

Obj = dict[str, Any]
HEARTH_IMAGE_REPO = HEARTH_IMAGE.rsplit(":", 1)[0]
LOCAL_COMMANDS = ("hearth-sim-engine", "hearth-operator", "hearth-router", "hearth-fetch")
_QUANTITY_UNITS = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
}


def image_repo(image: str) -> str:
    """`docker.io/library/x:tag`, `docker.io/x:tag` and `x:tag` name one repository, `x`."""
    repo = image.split("@", 1)[0]
    if ":" in repo.rsplit("/", 1)[-1]:
        repo = repo.rsplit(":", 1)[0]
    return repo.removeprefix("docker.io/").removeprefix("library/")


class CannotRun(Exception):
    """The image cannot run here; the message says why (the pod's ErrImagePull-like Event)."""


def hearth_command(container: Obj) -> list[str]:
    """Hearth's own image: one of its console scripts, from this Python's environment."""
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if not argv or argv[0] not in LOCAL_COMMANDS:
        raise CannotRun(f"{HEARTH_IMAGE_REPO} runs {', '.join(LOCAL_COMMANDS)} here, not {argv[:1]}")
    script = Path(sys.executable).parent / argv[0]
    return [str(script), *argv[1:]]


def volume_folder(volume: Obj, volumes_dir: Path | None, pod_dir: Path | None) -> Path | None:
    """Where a claim (a folder per claim), a hostPath (a folder for the homelab's host, shared by
    its nodes) or an emptyDir (a folder of the pod's own) is on this machine; None for other
    kinds of volume, and for claims and hostPaths in a homelab without volumes."""
    if volumes_dir is not None and volume.get("persistentVolumeClaim"):
        return volumes_dir / str(volume["persistentVolumeClaim"]["claimName"])
    if volumes_dir is not None and volume.get("hostPath"):
        return volumes_dir / "hostPath" / str(volume["hostPath"]["path"]).strip("/")
    if "emptyDir" in volume and pod_dir is not None:
        return pod_dir / "volumes" / str(volume["name"])
    return None


def volume_paths(
    pod: Obj, container: Obj, volumes_dir: Path | None, pod_dir: Path | None = None
) -> dict[str, str]:
    """Mount path → local folder, for the PersistentVolumeClaims (a folder per claim), hostPath
    volumes (a folder for the homelab's host, shared by its nodes) and emptyDirs (a folder of the
    pod's own, shared by its containers) the container mounts."""
    if volumes_dir is None:
        return {}
    folders: dict[str, Path] = {}
    for v in pod["spec"].get("volumes") or []:
        folder = volume_folder(v, volumes_dir, pod_dir)
        if folder is not None:
            folders[v["name"]] = folder
    return {
        m["mountPath"].rstrip("/"): str(folders[m["name"]])
        for m in container.get("volumeMounts") or []
        if m.get("name") in folders
    }


def quantity_bytes(quantity: str) -> int:
    """`50Mi` → 52428800: a Kubernetes storage quantity in bytes."""
    for suffix, factor in _QUANTITY_UNITS.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(float(quantity))


def claim_capacity(pod: Obj, container: Obj, claims: dict[str, Obj]) -> int | None:
    """The smallest capacity among the claims the container writes to (their requested storage),
    or None. The simulated volume is a folder, so the kubelet enforces it as the largest file a
    process may write (RLIMIT_FSIZE: a write past it fails with EFBIG, Python ignoring SIGXFSZ) —
    for a download of one large file, what a full volume does."""
    names = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"].get("volumes") or []
        if v.get("persistentVolumeClaim")
    }
    sizes = []
    for mount in container.get("volumeMounts") or []:
        claim = claims.get(names.get(mount.get("name"), ""))
        if claim is None or mount.get("readOnly"):
            continue
        storage = ((claim.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")
        if storage:
            sizes.append(quantity_bytes(str(storage)))
    return min(sizes) if sizes else None


def localize(arg: str, ip: str, mounts: dict[str, str]) -> str:
    """An arg as the local process needs it: "all addresses" and `localhost` are the pod's own
    (a pod has its own network namespace, shared by its containers), and paths under a mounted
    claim point into its folder."""
    arg = arg.replace("0.0.0.0", ip).replace("localhost", ip)
    for mount, local in mounts.items():
        if arg == mount or arg.startswith(mount + "/"):
            return local + arg[len(mount) :]
    return arg


def listen_env(ip: str) -> dict[str, str]:
    """The pod's address for Hearth's servers to listen on. The homelab has no network
    namespaces (its pods, processes or containers, share the host's loopback), so where a pod
    would listen on all of its own addresses, it is told its one."""
    return {"HEARTH_ROUTER_HOST": ip, "HEARTH_OPERATOR_METRICS_HOST": ip}


def container_port(containers: list[Obj], port: int | str) -> int | str | None:
    """A port as a probe or a Service's targetPort gives it: a number, or the name of one of
    the containers' ports (None when no container has that name)."""
    if not isinstance(port, str):
        return port
    named = {p.get("name"): p.get("containerPort") for c in containers for p in c.get("ports") or []}
    return named.get(port)


def sidecars(pod: Obj) -> list[Obj]:
    """The pod's native sidecars: init containers that keep running (`restartPolicy: Always`)
    beside its containers, started before them and stopped after them."""
    return [c for c in pod["spec"].get("initContainers") or [] if c.get("restartPolicy") == "Always"]


def network_env(pod: Obj, ip: str, port: int) -> dict[str, str]:
    """Where a pod's process listens and who it is: every pod binds its own loopback IP."""
    return {
        "HEARTH_SIM_HOST": ip,
        "HEARTH_SIM_PORT": str(port),
        "POD_IP": ip,
        "POD_NAME": pod["metadata"]["name"],
        "POD_NAMESPACE": pod["metadata"]["namespace"],
        "NODE_NAME": pod["spec"].get("nodeName", ""),
    }

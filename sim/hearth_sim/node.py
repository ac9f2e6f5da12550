"""What a pod's runner (containers.py) needs of the kubelet that runs it: the kubelet's settings
and the few calls it makes back — as a protocol, so the runner does not import the kubelet that
imports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hearth_sim import llamacpp, podman
from hearth_sim.kube import Kube
from hearth_sim.nodes import NodeSpec
from hearth_sim.pod_files import ApiEndpoint
from hearth_sim.services import ServiceProxy

Obj = dict[str, Any]


@dataclass
class KubeletConfig:
    nodes: list[NodeSpec]
    log_dir: Path
    time_scale: float = 1.0  # handed to sim engines that do not set their own
    probe_interval: float = 0.05  # faster than a real kubelet, so status follows within ms
    backoff_base: float = 10.0  # crash-loop back-off: base * 2^restarts, capped at 300 s
    grace_seconds: float = 2.0
    ip_prefix: str = "127.10"
    extra_env: dict[str, str] = field(default_factory=dict)
    volumes_dir: Path | None = None  # a folder per PersistentVolumeClaim: the pods' volumes
    api: ApiEndpoint | None = None  # the API server over https, as pods in containers reach it
    # Hearth's own pods as containers of its image, where podman and the image are here (else,
    # and when False, as the matching console scripts).
    containers: bool = True


class Node(Protocol):
    """The kubelet as its pods' runners see it."""

    kube: Kube
    config: KubeletConfig
    pids: dict[str, int]  # pod uid → the pid of its running container's process
    contained: dict[str, str]  # pod uid → "ns/name" of the pods run as containers of the image
    services: ServiceProxy  # the Services pods name in their env, as they reach them

    async def event(self, obj: Obj, type_: str, reason: str, message: str) -> None: ...

    async def patch_pod_status(self, ns: str, name: str, status: Obj) -> None: ...

    async def llamacpp(self) -> tuple[llamacpp.Runtime | None, str]: ...

    async def container_runtime(self) -> podman.Runtime | None: ...

"""The simulated homelab's nodes: two GPU nodes and a CPU-only one, or a set from a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from hearth_api import names

_PRODUCTS = {"rtx3070": "NVIDIA-GeForce-RTX-3070", "rtx3090": "NVIDIA-GeForce-RTX-3090"}


class NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    gpu_class: str | None = None
    vram_gib: int | None = Field(default=None, ge=1)
    gpus: int = Field(default=0, ge=0)
    cpu: str = "8"
    memory: str = "32Gi"
    labels: dict[str, str] = Field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **self.labels,
        }
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": "110"}
        if self.gpu_class:
            labels[names.GPU_CLASS_LABEL] = self.gpu_class
            labels[names.NVIDIA_PRODUCT_LABEL] = _PRODUCTS.get(self.gpu_class, self.gpu_class)
            if self.vram_gib:
                labels[names.GPU_VRAM_LABEL] = str(self.vram_gib)
            capacity[names.NVIDIA_GPU_RESOURCE] = str(self.gpus or 1)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": {},
            "status": {
                "capacity": capacity,
                "allocatable": dict(capacity),
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "hearth-sim kubelet is posting ready status",
                    }
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "osImage": "hearth-sim",
                    "kernelVersion": "loopback",
                    "kubeletVersion": "v1.32.0-hearth-sim",
                    "kubeProxyVersion": "v1.32.0-hearth-sim",
                    "containerRuntimeVersion": "hearth-sim://local-processes",
                    "bootID": self.name,
                    "machineID": self.name,
                    "systemUUID": self.name,
                },
                "addresses": [{"type": "Hostname", "address": self.name}],
            },
        }


DEFAULT_NODES = [
    NodeSpec(name="gpu-3070", gpu_class="rtx3070", vram_gib=8, gpus=1),
    NodeSpec(name="gpu-3090", gpu_class="rtx3090", vram_gib=24, gpus=1),
    NodeSpec(name="cpu-0"),
]


def load_nodes(path: Path | None) -> list[NodeSpec]:
    """Nodes from a YAML list (`[{name, gpu_class, vram_gib, gpus}]`), or the default three."""
    if path is None:
        return list(DEFAULT_NODES)
    raw = yaml.safe_load(path.read_text()) or []
    return [NodeSpec.model_validate(item) for item in raw]

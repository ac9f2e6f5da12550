"""A node's GPUs as the labels describe them, and how models pack onto its cards. Pure.

Read by the operator (placement) and the router (the dashboard's GPU map), so both see the
same cards: Hearth's own labels, else NVIDIA GPU feature discovery's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hearth_api.model_deployment import Phase
from hearth_api.names import (
    GPU_CLASS_LABEL,
    GPU_VRAM_LABEL,
    NVIDIA_COUNT_LABEL,
    NVIDIA_GPU_RESOURCE,
    NVIDIA_MEMORY_LABEL,
    NVIDIA_PRODUCT_LABEL,
    NVIDIA_REPLICAS_LABEL,
)

# NVIDIA GPU feature discovery's product label → (class, VRAM), for nodes without Hearth's labels.
PRODUCTS: dict[str, tuple[str, int]] = {
    "NVIDIA-GeForce-RTX-3070": ("rtx3070", 8),
    "NVIDIA-GeForce-RTX-3070-Ti": ("rtx3070", 8),
    "NVIDIA-GeForce-RTX-3090": ("rtx3090", 24),
    "NVIDIA-GeForce-RTX-3090-Ti": ("rtx3090", 24),
}


# The phases in which a model holds its node's VRAM (placement counts them; the GPU map shows them).
OCCUPYING = (Phase.LOADING, Phase.WARM, Phase.EVICTING)


@dataclass(frozen=True)
class GpuNode:
    name: str
    gpu_class: str
    vram_gib: int  # per card
    slots: int = 1  # `nvidia.com/gpu` units it hands out: cards times time-slicing replicas
    cards: int = 1  # physical cards, each its own VRAM bin


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def gpu_node(node: dict[str, Any]) -> GpuNode | None:
    """A node's GPUs from Hearth's labels, else from what NVIDIA's GPU feature discovery puts on
    it: `nvidia.com/gpu.product` (with `-SHARED` under time-slicing), `nvidia.com/gpu.memory`
    (MiB per card), `nvidia.com/gpu.count` (cards); None for CPU nodes. Without a card count,
    one card (a single bin: never more VRAM than there is on one card)."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    product = str(labels.get(NVIDIA_PRODUCT_LABEL, "")).removesuffix("-SHARED")
    known = PRODUCTS.get(product)
    gpu_class = labels.get(GPU_CLASS_LABEL) or (known[0] if known else None)
    vram = _int(labels.get(GPU_VRAM_LABEL))
    if vram is None and _int(labels.get(NVIDIA_MEMORY_LABEL)):
        vram = int(labels[NVIDIA_MEMORY_LABEL]) // 1024
    if vram is None and known:
        vram = known[1]
    if gpu_class is None or not vram:
        return None
    cards = max(_int(labels.get(NVIDIA_COUNT_LABEL)) or 1, 1)
    replicas = max(_int(labels.get(NVIDIA_REPLICAS_LABEL)) or 1, 1)
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    slots = _int(allocatable.get(NVIDIA_GPU_RESOURCE, cards * replicas))
    if slots is None:
        return None
    return GpuNode(meta["name"], gpu_class, vram, slots, cards)


def layout(models: list[tuple[str, float, int]], node: GpuNode) -> list[list[tuple[str, float]]] | None:
    """Models of (name, VRAM, cards) laid onto the node's cards, each card its own bin: largest
    share first, each on the cards with the most room left. Per card, the (name, GiB) it holds;
    None when they do not fit."""
    free = [float(node.vram_gib)] * node.cards
    cards: list[list[tuple[str, float]]] = [[] for _ in range(node.cards)]
    shares = sorted(((v / max(c, 1), c, name) for name, v, c in models), key=lambda m: m[:2], reverse=True)
    for share, count, name in shares:
        if count > node.cards:
            return None
        roomiest = sorted(range(node.cards), key=lambda i: free[i], reverse=True)[:count]
        if any(free[i] < share for i in roomiest):
            return None
        for i in roomiest:
            free[i] -= share
            cards[i].append((name, share))
    return cards


def packs(models: list[tuple[float, int]], node: GpuNode) -> bool:
    """Whether models of (VRAM, cards) fit the node's cards."""
    return layout([("", vram, count) for vram, count in models], node) is not None

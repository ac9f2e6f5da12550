"""The dashboard's GPU map: one bar per physical card, with the models on it. Pure.

Cards come from the nodes' labels (`hearth_api.gpus`, as the operator places), models from
their status: a model occupies its node while Loading, Warm or Evicting, laid onto the node's
cards as placement packs them. A model waiting for a card to be freed (`status.evicting`) is
shown as *incoming* on that node, with the models being unloaded for it — so an eviction is
visible before it happens.
"""

from __future__ import annotations

from typing import Any

from hearth_api.gpus import OCCUPYING, GpuNode, gpu_node, layout
from hearth_api.model_deployment import ModelDeployment, gpu_short_name


def _resident(md: ModelDeployment, share: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key": md.key,
        "model": md.spec.model,
        "phase": md.status.phase.value if md.status.phase else None,
        "vramGiB": round(share, 2),
    }
    vram = md.status.vram
    if vram is not None:
        # The estimate by part (per card), and what the spec reserves beyond it, if anything.
        out["parts"] = {
            "weights": vram.weights_gib,
            "kvCache": vram.kv_cache_gib,
            "compute": vram.compute_gib,
            "overhead": vram.overhead_gib,
            "reserved": round(max(share - vram.total_gib, 0.0), 2),
        }
    return out


def _cards(node: GpuNode, residents: list[ModelDeployment]) -> list[list[tuple[str, float]]]:
    wanted = [(md.key, md.vram_gib, md.spec.gpu.count) for md in residents]
    laid = layout(wanted, node)
    if laid is None:  # more than fits (a spec changed under a running model): all on the first
        laid = [[(k, v / max(c, 1)) for k, v, c in wanted]] + [[] for _ in range(node.cards - 1)]
    return laid


def _incoming(node: GpuNode, models: list[ModelDeployment]) -> list[dict[str, Any]]:
    by_key = {md.key: md for md in models}
    return [
        {
            "key": md.key,
            "model": md.spec.model,
            "unloading": [by_key[k].spec.model if k in by_key else k for k in md.status.evicting.models],
        }
        for md in models
        if md.status.evicting is not None and md.status.evicting.node == node.name
    ]


def gpu_map(nodes: list[dict[str, Any]], models: list[ModelDeployment]) -> list[dict[str, Any]]:
    """Per GPU node: its class, VRAM per card, each card's models and free VRAM, and the models
    waiting for room there."""
    by_key = {md.key: md for md in models}
    out: list[dict[str, Any]] = []
    for raw in sorted(nodes, key=lambda n: str(n["metadata"]["name"])):
        node = gpu_node(raw)
        if node is None:
            continue  # a CPU node
        residents = [md for md in models if md.status.node == node.name and md.status.phase in OCCUPYING]
        cards = []
        for index, card in enumerate(_cards(node, residents)):
            used = sum(share for _, share in card)
            cards.append(
                {
                    "index": index,
                    "usedGiB": round(used, 2),
                    "freeGiB": round(max(node.vram_gib - used, 0.0), 2),
                    "models": [_resident(by_key[k], share) for k, share in card],
                }
            )
        out.append(
            {
                "node": node.name,
                "gpuClass": node.gpu_class,
                "label": gpu_short_name(node.gpu_class),
                "vramGiB": node.vram_gib,
                "cards": cards,
                "incoming": _incoming(node, models),
            }
        )
    return out

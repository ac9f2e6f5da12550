"""Where a model runs: GPU nodes, free VRAM and device slots, and whom to evict. Pure.

Each physical card is its own VRAM bin: a node with two 3090s is two 24 GiB bins, never one
48 GiB pool. A model fits a node when it and the models Loading, Warm or Evicting there pack
into its cards (a model of `gpu.count` k takes an even share of its VRAM on k cards), and the
node's `nvidia.com/gpu` units (cards times the device plugin's time-slicing replicas) suffice.

Eviction rule, when nothing fits: on a node of the right class, unload Warm models (never one
that is Loading) in this order — lowest `priority` first, then longest idle, then the one
cheapest to bring back (smallest warmup estimate) — until the newcomer fits. A model whose
`hearth.dev/last-activity` lies within its own `idleTimeoutSeconds` is busy (the router renews it
while requests wait or stream) and is only evicted for a newcomer of strictly higher priority.
When no node can be freed, the model is Unschedulable, with a message naming what occupies the
GPUs it could use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hearth_api.gpus import OCCUPYING, GpuNode, gpu_node, packs
from hearth_api.model_deployment import GpuClass, Phase, gpu_short_name

__all__ = ["OCCUPYING", "Decision", "GpuNode", "Resident", "Want", "gpu_node", "packs", "place"]


@dataclass(frozen=True)
class Resident:
    """A model as placement sees it."""

    key: str  # namespace/name
    model: str
    node: str | None
    phase: Phase | None
    vram_gib: float
    gpus: int = 1
    priority: int = 0
    last_activity: datetime | None = None
    idle_timeout: float = 900
    estimate: float = 0.0
    pinned: bool = False  # minReplicas ≥ 1: kept warm on purpose, never evicted

    def busy(self, now: datetime) -> bool:
        if self.last_activity is None:
            return False
        return (now - self.last_activity).total_seconds() < self.idle_timeout


@dataclass(frozen=True)
class Want:
    """A model that needs a GPU."""

    key: str
    gpu_class: GpuClass
    vram_gib: float
    gpus: int = 1
    priority: int = 0
    current_node: str | None = None
    basis: str = ""  # where vram_gib comes from, for messages; "" : gpu.vramGiB

    @property
    def why(self) -> str:
        return self.basis or f"gpu.vramGiB={self.vram_gib:g}"


@dataclass(frozen=True)
class Decision:
    node: GpuNode | None = None
    victims: tuple[str, ...] = ()  # keys to evict before the model fits
    waiting_for: tuple[str, ...] = ()  # keys already being evicted for room
    message: str = ""
    permanent: bool = False  # no node could ever hold it: the spec must change

    @property
    def placed(self) -> bool:
        return self.node is not None and not self.victims and not self.waiting_for


def _suits(want: Want, node: GpuNode) -> bool:
    class_ok = want.gpu_class is GpuClass.ANY or node.gpu_class == want.gpu_class.value
    return class_ok and packs([(want.vram_gib, want.gpus)], node) and node.slots >= want.gpus


def _fits(want: Want, node: GpuNode, occupants: list[Resident]) -> bool:
    used_slots = sum(r.gpus for r in occupants)
    if node.slots - used_slots < want.gpus:
        return False
    return packs([(r.vram_gib, r.gpus) for r in occupants] + [(want.vram_gib, want.gpus)], node)


def _ago(now: datetime, when: datetime | None) -> str:
    if when is None:
        return "never active"
    seconds = int((now - when).total_seconds())
    return f"active {seconds} s ago" if seconds < 120 else f"active {seconds // 60} min ago"


def describe(r: Resident, now: datetime) -> str:
    state = "loading" if r.phase is Phase.LOADING else _ago(now, r.last_activity)
    return f"{r.model} ({r.vram_gib:g} GiB, {state})"


def never_fits(want: Want, nodes: list[GpuNode]) -> Decision | None:
    """A permanent refusal when no node could hold the model even empty; None when one could."""
    if any(_suits(want, n) for n in nodes):
        return None
    known = ", ".join(f"{n.name} {n.gpu_class} {n.vram_gib} GiB" for n in nodes) or "none"
    what = "any GPU" if want.gpu_class is GpuClass.ANY else f"a {want.gpu_class.value} GPU"
    return Decision(
        permanent=True,
        message=f"no node has {what} with {want.vram_gib:g} GiB for {want.why} "
        f"and gpu.class={want.gpu_class.value} (GPU nodes: {known})",
    )


def place(want: Want, nodes: list[GpuNode], residents: list[Resident], now: datetime) -> Decision:
    refused = never_fits(want, nodes)
    if refused is not None:
        return refused
    suitable = [n for n in nodes if _suits(want, n)]
    others = [r for r in residents if r.key != want.key and r.node and r.phase in OCCUPYING]
    on = {n.name: [r for r in others if r.node == n.name] for n in suitable}

    # Stay where we are, else the tightest fit (keeps the big card free for big models).
    fitting = [n for n in suitable if _fits(want, n, on[n.name])]
    if fitting:
        sticky = [n for n in fitting if n.name == want.current_node]
        best = (
            sticky[0]
            if sticky
            else min(fitting, key=lambda n: n.vram_gib - sum(r.vram_gib for r in on[n.name]))
        )
        return Decision(node=best)

    # Room is already being made (victims Evicting): wait for it.
    for n in suitable:
        staying = [r for r in on[n.name] if r.phase is not Phase.EVICTING]
        if len(staying) < len(on[n.name]) and _fits(want, n, staying):
            leaving = tuple(r.key for r in on[n.name] if r.phase is Phase.EVICTING)
            return Decision(
                node=n,
                waiting_for=leaving,
                message=f"Freeing the {gpu_short_name(n.gpu_class)} on {n.name}: unloading "
                + ", ".join(r.model for r in on[n.name] if r.phase is Phase.EVICTING),
            )

    plans: list[tuple[tuple[int, int], GpuNode, list[Resident]]] = []
    for n in suitable:
        staying = [r for r in on[n.name] if r.phase is not Phase.EVICTING]
        candidates = sorted(
            (
                r
                for r in staying
                if r.phase is Phase.WARM and not r.pinned and (not r.busy(now) or r.priority < want.priority)
            ),
            key=lambda r: (
                r.priority,
                r.last_activity or datetime.min.replace(tzinfo=now.tzinfo),
                r.estimate,
            ),
        )
        victims: list[Resident] = []
        for r in candidates:
            if _fits(want, n, [s for s in staying if s not in victims]):
                break
            victims.append(r)
        if _fits(want, n, [s for s in staying if s not in victims]):
            plans.append(((len(victims), sum(v.priority for v in victims)), n, victims))
    if plans:
        _, node, victims = min(plans, key=lambda p: p[0])
        return Decision(
            node=node,
            victims=tuple(v.key for v in victims),
            message=f"Freeing the {gpu_short_name(node.gpu_class)} on {node.name}: unloading "
            + ", ".join(v.model for v in victims),
        )

    held = [
        f"{n.gpu_class} on {n.name} holds " + ", ".join(describe(r, now) for r in on[n.name])
        for n in suitable
        if on[n.name]
    ]
    return Decision(message="; ".join(held) or "no GPU has room")

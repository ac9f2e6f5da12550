"""How a Deployment replaces its pods, as the Deployment controller does it: `Recreate` stops
every old pod before a new one starts (an engine's GPU cannot hold both); `RollingUpdate` (the
default) starts new pods up to `maxSurge` over the wanted count and stops an old one only while
`replicas - maxUnavailable` stay Ready — with `maxUnavailable: 0`, an old router stops only once
a new one is Ready to take the requests. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hearth_sim.scheduling import is_ready

Obj = dict[str, Any]


@dataclass(frozen=True)
class Step:
    create: int  # new pods (of the current template) to make
    delete: list[Obj]  # pods to stop: old ones, and new ones beyond the wanted count


def _amount(value: int | str | None, replicas: int, default: str, round_up: bool) -> int:
    """An int, or a percentage of `replicas` (maxSurge rounds up, maxUnavailable down)."""
    value = default if value is None else value
    if isinstance(value, int):
        return value
    share = replicas * float(value.rstrip("%")) / 100
    return math.ceil(share) if round_up else math.floor(share)


def _oldest_first(pods: list[Obj]) -> list[Obj]:
    return sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"])


def step(deployment: Obj, fresh: list[Obj], stale: list[Obj]) -> Step:
    """The next step towards `replicas` pods of the current template: `fresh` are the live pods
    of it, `stale` those of an older one (neither holds pods already being deleted)."""
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    strategy = spec.get("strategy") or {}
    extra = _oldest_first(fresh)[desired:]
    fresh = [p for p in fresh if p not in extra]
    if strategy.get("type") == "Recreate":
        # The new pods are made at once; one that needs the GPU an old pod still holds stays
        # Pending until that pod is gone (the scheduler's part).
        return Step(max(desired - len(fresh), 0), stale + extra)
    rolling = strategy.get("rollingUpdate") or {}
    surge = _amount(rolling.get("maxSurge"), desired, "25%", round_up=True)
    unavailable = _amount(rolling.get("maxUnavailable"), desired, "25%", round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # as the API server's validation insists: one of them is not 0
    create = min(desired - len(fresh), desired + surge - len(fresh) - len(stale))
    # Old pods that are not Ready serve nobody: they go first, and at once.
    delete = [p for p in stale if not is_ready(p)]
    ready_old = _oldest_first([p for p in stale if is_ready(p)])
    ready_total = len(ready_old) + sum(1 for p in fresh if is_ready(p))
    may_stop = max(ready_total - (desired - unavailable), 0)
    delete += ready_old[:may_stop]
    return Step(max(create, 0), delete + extra)

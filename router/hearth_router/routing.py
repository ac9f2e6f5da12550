"""Routing policy as plain functions: which replica, which model for `auto`. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hearth_api.model_deployment import ModelDeployment, Phase

AUTO_NAMES = ("auto",)
DEFAULT_ALIAS = "default"


def pick(endpoints: Sequence[str], inflight: Mapping[str, int], concurrency: int) -> str | None:
    """The Ready endpoint with the fewest requests in flight, if any has a free slot."""
    free = [e for e in endpoints if inflight.get(e, 0) < concurrency]
    if not free:
        return None
    return min(free, key=lambda e: (inflight.get(e, 0), e))


def choose_auto(models: Sequence[ModelDeployment], inflight: Mapping[str, int]) -> ModelDeployment | None:
    """For `model: auto`: a Warm model (the least busy), else the one aliased `default`, else the
    quickest to wake. Waking is the last resort."""
    warm = [m for m in models if m.status.phase is Phase.WARM and m.status.endpoints]
    if warm:

        def load(m: ModelDeployment) -> float:
            return sum(inflight.get(e, 0) for e in m.status.endpoints) / len(m.status.endpoints)

        return min(warm, key=lambda m: (load(m), m.spec.model))
    usable = [m for m in models if m.status.phase not in (Phase.FAILED,)]
    for m in usable:
        if DEFAULT_ALIAS in m.spec.aliases or m.spec.model == DEFAULT_ALIAS:
            return m
    if not usable:
        return None
    return min(usable, key=lambda m: (m.status.warmup.estimate_seconds or 1e9, m.spec.model))

"""How long a cold start takes: learned from measured warmups. Pure.

A warmup is measured from the moment the operator scales a Cold model up (the wake) to the
moment its first replica turns Ready. The last 20 are kept in `status.warmup.samples`, and per
GPU class in `status.warmup.byGpuClass` (a model moved to the other card loads at its speed).

The estimate is the median of the most recent five samples on the GPU class it will load on
(else of any class): the median shrugs off one odd load (a cold page cache, a pull), and five
samples follow a drift (a new image, a bigger context) within a few loads. With no samples yet,
`warmup.expectedSeconds` from the spec; with none of that, a prior by size (the contract's
`prior_warmup_seconds`, which the router falls back to as well).
"""

from __future__ import annotations

import statistics

from hearth_api.model_deployment import MAX_WARMUP_SAMPLES

RECENT = 5


def estimate(samples: list[float], prior: float) -> float:
    """The median of the recent samples, else the prior (the spec's guess, else by size)."""
    if samples:
        return round(statistics.median(samples[-RECENT:]), 1)
    return prior


def add_sample(samples: list[float], seconds: float) -> list[float]:
    return [*samples, round(seconds, 2)][-MAX_WARMUP_SAMPLES:]

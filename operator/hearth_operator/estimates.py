"""How long a cold start takes: learned from measured warmups. Pure.

A warmup is measured from the moment the operator scales a Cold model up (the wake) to the
moment its first replica turns Ready. The last 20 are kept in `status.warmup.samples`, and per
GPU class in `status.warmup.byGpuClass` (a model moved to the other card loads at its speed).

The estimate is the median of the most recent five samples on the GPU class it will load on
(else of any class): the median shrugs off one odd load (a cold page cache, a pull), and five
samples follow a drift (a new image, a bigger context) within a few loads. With no samples yet,
`warmup.expectedSeconds` from the spec; with none of that, a prior by size (the seed's table:
up to 8 GiB 5 s, up to 16 GiB 15 s, larger 30 s).
"""

from __future__ import annotations

import statistics

from hearth_operator.api import MAX_WARMUP_SAMPLES

RECENT = 5


def size_prior(vram_gib: int) -> float:
    if vram_gib <= 8:
        return 5.0
    if vram_gib <= 16:
        return 15.0
    return 30.0


def estimate(samples: list[float], expected: float | None, vram_gib: int) -> float:
    if samples:
        return round(statistics.median(samples[-RECENT:]), 1)
    if expected is not None:
        return float(expected)
    return size_prior(vram_gib)


def add_sample(samples: list[float], seconds: float) -> list[float]:
    return [*samples, round(seconds, 2)][-MAX_WARMUP_SAMPLES:]

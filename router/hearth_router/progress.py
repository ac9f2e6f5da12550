"""What a waiting client is told: loading and queued events from the model's status and the
clock. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from hearth_api.model_deployment import Eviction, ModelDeployment, Phase, gpu_short_name


@dataclass(frozen=True)
class Loading:
    message: str
    estimated_time: int
    progress: float


def _freeing(gpu: str | None, eviction: Eviction) -> str:
    names = ", ".join(key.split("/", 1)[-1] for key in eviction.models)
    return f"Freeing the {gpu or 'GPU'} on {eviction.node}: unloading {names}…"


def loading(md: ModelDeployment, now: datetime, at_most: int | None = None) -> Loading:
    """The countdown: the operator's estimate minus the time since the load began, never above
    `at_most` (what the client was last told: a countdown does not count up); overdue loads say
    so instead of counting below zero."""
    model, status, estimate = md.spec.model, md.status, md.warmup_estimate
    since = status.loading_since
    elapsed = max((now - since).total_seconds(), 0.0) if since and status.phase is Phase.LOADING else 0.0
    remaining = estimate - elapsed
    gpu = gpu_short_name(status.gpu_class)
    on = f" on {gpu}" if gpu else ""
    if status.phase is Phase.LOADING and status.evicting is not None:
        base = _freeing(gpu, status.evicting)
    elif status.phase is Phase.EVICTING:
        base = f"Waiting for {model} to finish unloading…"
    elif status.phase is Phase.UNSCHEDULABLE:
        base = f"Waiting for a free GPU: {status.message}"
    elif status.phase is Phase.LOADING:
        base = f"Warming up {model}{on}…"
    else:
        base = f"Waking {model}{on}…"
    if remaining < 0:
        over = math.ceil(-remaining)
        return Loading(f"{base} taking longer than usual ({over} s over the usual {estimate:.0f} s)", 0, 0.99)
    left = math.ceil(remaining) if at_most is None else min(math.ceil(remaining), at_most)
    progress = min(elapsed / estimate, 0.99) if estimate > 0 else 0.0
    return Loading(f"{base} ~{left} s", left, round(progress, 3))


def queued_message(model: str, position: int, seconds: int) -> str:
    ahead = "1 request" if position == 1 else f"{position} requests"
    return f"Queued behind {ahead} for {model}… ~{seconds} s"


def summary(gpu_class: str | None, warmed_in: float | None, tokens_per_second: float | None) -> str:
    """The line Open WebUI keeps above the reply: "Warmed up in 12 s on 3090 · 38 tokens/s"."""
    gpu = gpu_short_name(gpu_class) or "GPU"
    head = f"Warmed up in {warmed_in:.0f} s on {gpu}" if warmed_in is not None else f"On {gpu}"
    return f"{head} · {tokens_per_second:.0f} tokens/s" if tokens_per_second else head

"""An outcome becomes the status and its Events: conditions (with their transition times), the
warm-up estimate with the sample this reconcile measured, endpoints from the Ready pods. Pure."""

from __future__ import annotations

from datetime import datetime

from hearth_api import estimates
from hearth_api.model_deployment import (
    Condition,
    ConditionType,
    ModelDeployment,
    ModelDeploymentStatus,
    Phase,
    Reason,
    WarmupStatus,
    prior_warmup_seconds,
)
from hearth_api.names import LAST_ACTIVITY
from hearth_api.times import parse_time
from hearth_operator import downloads
from hearth_operator.lifecycle.inputs import Inputs
from hearth_operator.lifecycle.outcomes import Outcome
from hearth_operator.lifecycle.wanting import size_text
from hearth_operator.vram import Verdict

Event = tuple[str, str, str]  # (type, reason, message)


def conditions(
    prev: list[Condition],
    now: datetime,
    generation: int | None,
    outcome: Outcome,
    degraded: bool,
    estimate: Verdict | None = None,
) -> list[Condition]:
    scheduled_ok, scheduled_reason, scheduled_message = outcome.scheduled
    failed = outcome.phase is Phase.FAILED
    wanted_: dict[ConditionType, tuple[bool, str, str]] = {
        ConditionType.SCHEDULED: (scheduled_ok, scheduled_reason.value, scheduled_message),
        ConditionType.READY: (outcome.phase is Phase.WARM, outcome.phase.value, outcome.message),
        ConditionType.DEGRADED: (
            degraded,
            (
                outcome.degraded_reason
                or (Reason.FAILED if failed else Reason.RESTARTS if degraded else Reason.HEALTHY)
            ).value,
            outcome.message if degraded else "",
        ),
    }
    if estimate is not None:
        est_ok, est_reason, est_message = estimate.condition
        wanted_[ConditionType.VRAM_ESTIMATED] = (est_ok, est_reason.value, est_message)
    old = {c.type: c for c in prev}
    out = []
    for ctype, (ok, reason, message) in wanted_.items():
        status = "True" if ok else "False"
        before = old.get(ctype.value)
        since = before.last_transition_time if before and before.status == status else now
        out.append(
            Condition(
                type=ctype.value,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=since,
                observed_generation=generation,
            )
        )
    return out


def _warmup(md: ModelDeployment, gpu_class: str | None, sample: float | None) -> WarmupStatus:
    prev = md.status.warmup
    samples = list(prev.samples)
    by_class = {k: list(v) for k, v in prev.by_gpu_class.items()}
    last = prev.last_seconds
    if sample is not None:
        samples = estimates.add_sample(samples, sample)
        if gpu_class:
            by_class[gpu_class] = estimates.add_sample(by_class.get(gpu_class, []), sample)
        last = round(sample, 2)
    target = gpu_class or (md.spec.gpu.gpu_class.value if md.spec.gpu.gpu_class.value != "any" else None)
    basis = by_class.get(target, []) if target else []
    estimate = estimates.estimate(basis or samples, prior_warmup_seconds(md.spec, md.vram_estimate))
    return WarmupStatus(estimate_seconds=estimate, samples=samples, last_seconds=last, by_gpu_class=by_class)


def events(prev: ModelDeploymentStatus, outcome: Outcome) -> list[Event]:
    """One Event per phase change, and per new reason to be Failed or Unschedulable."""
    trouble = outcome.phase in (Phase.FAILED, Phase.UNSCHEDULABLE)
    if outcome.phase is prev.phase and not (trouble and outcome.message != prev.message):
        return []
    kind = "Warning" if trouble else "Normal"
    text = outcome.message
    if outcome.sample is not None:
        text = f"{text}: warmed up in {outcome.sample:.1f} s"
    return [(kind, outcome.event_reason or outcome.phase.value, text)]


def _download_events(outcome: Outcome) -> list[Event]:
    cached = outcome.cached
    if cached is None:
        return []
    size = f" ({size_text(cached.bytes)})" if cached.bytes else ""
    return [("Normal", "Downloaded", f"the weights from {cached.uri}{size} are in the cache")]


def status_of(i: Inputs, outcome: Outcome) -> tuple[ModelDeploymentStatus, list[Event]]:
    md, prev = i.md, i.md.status
    live = [p for p in i.pods if not p.deleting]
    ready = [p for p in live if p.ready and p.ip]
    generation = md.metadata.get("generation")
    degraded = outcome.phase is Phase.FAILED or any(p.restarts > 0 for p in live)
    status = ModelDeploymentStatus(
        phase=outcome.phase,
        message=outcome.message,
        node=outcome.node.name if outcome.node else None,
        gpu_class=outcome.gpu_class,
        endpoints=sorted(f"http://{p.ip}:{md.spec.port}" for p in ready),
        replicas=len(live),
        ready_replicas=len(ready),
        loading_since=outcome.loading_since,
        warmup=_warmup(md, outcome.gpu_class, outcome.sample),
        last_activity=parse_time(md.annotations.get(LAST_ACTIVITY)),
        evicted_at=outcome.evicted_at or prev.evicted_at,
        evicting=outcome.evicting,
        download=outcome.download,
        cache=outcome.cached or (prev.cache if downloads.cached(md) else None),
        vram=md.status.vram,
        conditions=conditions(prev.conditions, i.now, generation, outcome, degraded, i.estimate),
        observed_generation=generation,
    )
    return status, _download_events(outcome) + _estimate_events(prev, i.estimate) + events(prev, outcome)


def _estimate_events(prev: ModelDeploymentStatus, estimate: Verdict | None) -> list[Event]:
    """A Warning when the estimate says the spec reserves too little, or the headers cannot be
    read — once per new message."""
    if estimate is None or estimate.warning is None:
        return []
    before = next((c for c in prev.conditions if c.type == ConditionType.VRAM_ESTIMATED.value), None)
    if before is not None and before.message == estimate.condition[2]:
        return []
    return [("Warning", estimate.condition[1].value, estimate.warning)]

"""A model's lifecycle as a pure function: (spec, annotations, pods, placement, clock, previous
status) → replicas to run, the new status, and the Events to record.

    Cold ──wake──► Loading ──first replica Ready──► Warm ──idle timeout──► Cold
      ▲               │  (waits while a GPU is freed)   │
      │               └──crash-looping / unrunnable──► Failed
      └──── Evicting ◄──── another model needs the GPU ─┘
    Unschedulable: wanted, but no node of its class can ever or now hold it.

A model is *wanted* while `minReplicas ≥ 1`, or while its last touch (the router's
`wake-requested-at` or `last-activity` annotation, whichever is later) lies within
`idleTimeoutSeconds`, or while it is Loading (a load is never cut short).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hearth_operator import estimates
from hearth_operator.api import (
    LAST_ACTIVITY,
    WAKE_REQUESTED_AT,
    Condition,
    ConditionType,
    ModelDeployment,
    ModelDeploymentStatus,
    Phase,
    WarmupStatus,
    parse_time,
)
from hearth_operator.placement import Decision, GpuNode

UNRUNNABLE = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError")
CRASHES_BEFORE_FAILED = 3


@dataclass(frozen=True)
class PodView:
    name: str
    ip: str | None
    ready: bool
    restarts: int = 0
    waiting_reason: str | None = None
    waiting_message: str = ""
    last_exit_code: int | None = None
    deleting: bool = False


def pod_view(pod: dict[str, Any]) -> PodView:
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    cs = (status.get("containerStatuses") or [{}])[0]
    waiting = (cs.get("state") or {}).get("waiting") or {}
    terminated = (cs.get("lastState") or {}).get("terminated") or {}
    return PodView(
        name=pod["metadata"]["name"],
        ip=status.get("podIP"),
        ready=ready,
        restarts=int(cs.get("restartCount", 0)),
        waiting_reason=waiting.get("reason"),
        waiting_message=waiting.get("message", ""),
        last_exit_code=terminated.get("exitCode"),
        deleting=bool(pod["metadata"].get("deletionTimestamp")),
    )


def rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def last_touch(md: ModelDeployment) -> datetime | None:
    stamps = [parse_time(md.annotations.get(k)) for k in (WAKE_REQUESTED_AT, LAST_ACTIVITY)]
    present = [s for s in stamps if s is not None]
    return max(present) if present else None


def warm_since(md: ModelDeployment) -> datetime | None:
    """When the model last turned Ready (its Ready condition's transition time)."""
    for c in md.status.conditions:
        if c.type == ConditionType.READY.value and c.status == "True":
            return c.last_transition_time
    return None


def idle_deadline(md: ModelDeployment) -> datetime | None:
    """When the model stops being wanted unless touched again (None: never, or not now). Idle
    time counts from the last touch or from turning Warm, whichever is later: a load that took
    longer than the idle timeout still gets its full idle period once it is ready."""
    touch = last_touch(md)
    if md.spec.scaling.min_replicas > 0 or touch is None:
        return None
    ready = warm_since(md) if md.status.phase is Phase.WARM else None
    start = max(touch, ready) if ready is not None else touch
    return start + timedelta(seconds=md.spec.scaling.idle_timeout_seconds)


def load_start(md: ModelDeployment, now: datetime) -> datetime:
    """A load starts at the wake that asked for it, when that wake is recent (the user has been
    waiting since then), else now. Bounded so a skewed clock cannot stretch a measurement."""
    wake = parse_time(md.annotations.get(WAKE_REQUESTED_AT))
    if wake is not None and now - timedelta(seconds=10) <= wake <= now:
        return wake
    return now


def wanted(md: ModelDeployment, pods: list[PodView], now: datetime) -> bool:
    if md.spec.scaling.min_replicas > 0:
        return True
    if md.status.phase is Phase.LOADING and any(not p.deleting for p in pods):
        return True
    touch, evicted = last_touch(md), md.status.evicted_at
    if touch is None or (evicted is not None and touch <= evicted):
        return False  # an evicted model comes back on the next request, not on an old wake
    deadline = idle_deadline(md)
    return deadline is not None and now < deadline


@dataclass
class Plan:
    replicas: int
    node: GpuNode | None
    status: ModelDeploymentStatus
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    evict: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inputs:
    md: ModelDeployment
    pods: list[PodView]
    now: datetime
    node: GpuNode | None = None  # the node the model holds (status.node), if any
    decision: Decision | None = None  # placement, when the model is wanted but holds no node
    evicted_for: str | None = None  # set when another model needs this one's GPU
    failure: str | None = None  # a spec the operator cannot honour, naming the field


def _conditions(
    prev: list[Condition],
    now: datetime,
    generation: int | None,
    wanted_: dict[ConditionType, tuple[bool, str, str]],
) -> list[Condition]:
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
    estimate = estimates.estimate(basis or samples, md.spec.warmup.expected_seconds, md.spec.gpu.vram_gib)
    return WarmupStatus(estimate_seconds=estimate, samples=samples, last_seconds=last, by_gpu_class=by_class)


def plan(i: Inputs) -> Plan:
    md, now, prev = i.md, i.now, i.md.status
    live = [p for p in i.pods if not p.deleting]
    ready = [p for p in live if p.ready and p.ip]
    generation = (md.metadata or {}).get("generation")
    node: GpuNode | None = None
    replicas = 0
    phase: Phase
    message: str
    loading_since: datetime | None = None
    sample: float | None = None
    evict: tuple[str, ...] = ()
    evicted_at = prev.evicted_at
    waiting_on: GpuNode | None = None  # the node being freed for this model
    scheduled: tuple[bool, str, str]

    if i.failure is not None:
        phase, message = Phase.FAILED, i.failure
        scheduled = (False, "InvalidSpec", i.failure)
    elif i.evicted_for is not None or (prev.phase is Phase.EVICTING and i.pods):
        phase = Phase.EVICTING if i.pods else Phase.COLD
        evicted_at = prev.evicted_at if prev.phase is Phase.EVICTING and prev.evicted_at else now
        why = f"to free the GPU for {i.evicted_for}" if i.evicted_for else "to free the GPU"
        message = f"Unloading {why}" if i.pods else f"Unloaded {why}; a request wakes it"
        scheduled = (False, "Evicted", message)
    elif not wanted(md, i.pods, now):
        replicas = md.spec.scaling.min_replicas
        phase = Phase.COLD
        if prev.phase in (Phase.WARM, Phase.LOADING):
            message = f"Scaled to zero after {md.spec.scaling.idle_timeout_seconds} s without requests"
        elif prev.phase is Phase.COLD and prev.message:
            message = prev.message
        else:
            message = "Cold: scaled to zero; a request wakes it"
        scheduled = (False, "ScaledToZero", message)
    else:
        held = i.node if prev.phase in (Phase.LOADING, Phase.WARM) else None
        decision = i.decision
        if held is not None:
            node = held
        elif decision is not None and decision.node is not None:
            node = decision.node
        if node is None:
            phase = Phase.UNSCHEDULABLE
            message = decision.message if decision else "no GPU node known yet"
            # NoSuitableNode: no node could ever hold it, so clients need not wait (the router errs).
            reason = "NoSuitableNode" if decision and decision.permanent else "Unschedulable"
            scheduled = (False, reason, message)
        elif held is None and decision is not None and not decision.placed:
            # Waiting for a GPU to be freed: counts as loading, so the router counts down. It
            # holds no node yet; the next reconcile places it once the victims are gone.
            phase, message = Phase.LOADING, decision.message
            node, waiting_on = None, node
            evict = decision.victims
            loading_since = (
                prev.loading_since
                if prev.phase is Phase.LOADING and prev.loading_since
                else load_start(md, now)
            )
            scheduled = (True, "Evicting", message)
        else:
            replicas = max(md.spec.scaling.min_replicas, 1)
            scheduled = (True, "Placed", f"on {node.name} ({node.gpu_class})")
            broken = next((p for p in live if p.waiting_reason in UNRUNNABLE), None)
            crashing = next((p for p in live if p.restarts >= CRASHES_BEFORE_FAILED and not p.ready), None)
            if ready:
                phase = Phase.WARM
                message = f"Warm on {node.name} ({node.gpu_class})"
                if prev.phase is not Phase.WARM and prev.loading_since is not None:
                    sample = max((now - prev.loading_since).total_seconds(), 0.0)
            elif broken is not None:
                phase = Phase.FAILED
                message = (
                    f"cannot start the engine: {broken.waiting_reason}: {broken.waiting_message}".rstrip(": ")
                )
            elif crashing is not None:
                phase = Phase.FAILED
                message = (
                    f"the engine crashed {crashing.restarts} times (last exit code "
                    f"{crashing.last_exit_code}); see kubectl logs {crashing.name}"
                )
            else:
                phase = Phase.LOADING
                loading_since = (
                    prev.loading_since
                    if prev.phase is Phase.LOADING and prev.loading_since
                    else load_start(md, now)
                )
                message = f"Loading {md.spec.model} on {node.name} ({node.gpu_class})"

    gpu_class = node.gpu_class if node else waiting_on.gpu_class if waiting_on else None
    warmup = _warmup(md, gpu_class, sample)
    degraded = phase is Phase.FAILED or any(p.restarts > 0 for p in live)
    touch = parse_time(md.annotations.get(LAST_ACTIVITY))
    status = ModelDeploymentStatus(
        phase=phase,
        message=message,
        node=node.name if node else None,
        gpu_class=gpu_class,
        endpoints=sorted(f"http://{p.ip}:{md.spec.port}" for p in ready),
        replicas=len(live),
        ready_replicas=len(ready),
        loading_since=loading_since,
        warmup=warmup,
        last_activity=touch,
        evicted_at=evicted_at,
        conditions=_conditions(
            prev.conditions,
            now,
            generation,
            {
                ConditionType.SCHEDULED: scheduled,
                ConditionType.READY: (phase is Phase.WARM, phase.value, message),
                ConditionType.DEGRADED: (
                    degraded,
                    "Failed" if phase is Phase.FAILED else "Restarts" if degraded else "Healthy",
                    message if degraded else "",
                ),
            },
        ),
        observed_generation=generation,
    )
    events: list[tuple[str, str, str]] = []
    if phase is not prev.phase or (phase in (Phase.FAILED, Phase.UNSCHEDULABLE) and message != prev.message):
        kind = "Warning" if phase in (Phase.FAILED, Phase.UNSCHEDULABLE) else "Normal"
        text = message if sample is None else f"{message}: warmed up in {sample:.1f} s"
        events.append((kind, phase.value, text))
    return Plan(replicas=replicas, node=node, status=status, events=events, evict=evict)

"""A model's lifecycle as pure functions: (spec, annotations, pods, placement, clock, previous
status) → replicas to run, the new status, and the Events to record.

    Cold ──wake──► (Downloading) ──► Loading ──first replica Ready──► Warm ──idle timeout──► Cold
      ▲       │          │  (waits while a GPU is freed)   │
      │       │          └──crash-looping / unrunnable──► Failed
      │       └──not found / no access / checksum / no room──► Failed
      └──── Evicting ◄──── another model needs the GPU ─┘
    Unschedulable: wanted, but no node of its class can ever or now hold it.
    Downloading: a `uri` source whose weights are not in the cache yet (downloads.py), before
    any GPU is taken; with `prefetch` also while nobody wants the model yet.

A model is *wanted* while `minReplicas ≥ 1`, or while its last touch (the router's
`wake-requested-at` or `last-activity` annotation, whichever is later) lies within
`idleTimeoutSeconds`, or while it is Loading (a load is never cut short by idleness) — unless a
user asked to unload it (`sleep-requested-at`) after that last touch.

`plan` picks one outcome — failed spec, evicted, cold, unplaced, waiting for room, placed —
each its own function returning a frozen `Outcome`; `_status` alone turns an outcome into the
status and Events.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from hearth_api import estimates
from hearth_api.activity import idle_deadline, last_touch, sleep_requested
from hearth_api.model_deployment import (
    CacheStatus,
    Condition,
    ConditionType,
    DownloadStatus,
    Eviction,
    ModelDeployment,
    ModelDeploymentStatus,
    Phase,
    Reason,
    WarmupStatus,
    effective_readiness_path,
    prior_warmup_seconds,
)
from hearth_api.names import LAST_ACTIVITY, WAKE_REQUESTED_AT
from hearth_api.times import parse_time
from hearth_operator import downloads
from hearth_operator.downloads import Fetch
from hearth_operator.placement import Decision, GpuNode
from hearth_operator.pods import PodView
from hearth_operator.vram import Verdict

CRASHES_BEFORE_FAILED = 3
LOAD_TIMEOUT_FACTOR = 5.0  # a load may take this many warm-up estimates (at least the minimum)
FIRST_FETCH_SECONDS = 6 * 3600.0  # a first start that downloads its weights inside the engine
RECENT_WAKE = timedelta(seconds=10)

Event = tuple[str, str, str]  # (type, reason, message)


# --- when a model is wanted ---------------------------------------------------------------------


def loading_since(md: ModelDeployment, now: datetime) -> datetime:
    """When the current load began: kept while Loading; a new load starts at the wake that asked
    for it when that wake is recent (the user has waited since then), else now. Bounded so a
    skewed clock cannot stretch a measurement."""
    if md.status.phase is Phase.LOADING and md.status.loading_since is not None:
        return md.status.loading_since
    if md.status.phase is Phase.WARM:
        # Its engine died (or its only replica went): nobody asked for this load, and a wake
        # from before, however recent, was answered by the load that made it Warm.
        return now
    if md.status.phase in (Phase.FAILED, Phase.DOWNLOADING):
        # A retry (the wakes before the failure were answered by it), or a load right after its
        # download: the load is measured on its own, so a first start's download never skews
        # the warm-up estimate.
        return now
    wake = parse_time(md.annotations.get(WAKE_REQUESTED_AT))
    if wake is not None and now - RECENT_WAKE <= wake <= now:
        return wake
    return now


def wanted(md: ModelDeployment, pods: list[PodView], now: datetime) -> bool:
    if md.spec.scaling.min_replicas > 0:
        return True
    if sleep_requested(md):
        return False
    if md.status.phase is Phase.LOADING and any(not p.deleting for p in pods):
        return True
    touch, evicted = last_touch(md), md.status.evicted_at
    if touch is None or (evicted is not None and touch <= evicted):
        return False  # an evicted model comes back on the next request, not on an old wake
    deadline = idle_deadline(md)
    return deadline is not None and now < deadline


# --- what to do ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    md: ModelDeployment
    pods: list[PodView]
    now: datetime
    node: GpuNode | None = None  # the node the model holds (status.node), if any
    decision: Decision | None = None  # placement, when the model is wanted but holds no node
    evicted_for: str | None = None  # set when another model needs this one's GPU
    failure: str | None = None  # a spec the operator cannot honour, naming the field
    load_timeout: float = 600.0  # seconds a load may take at least, before it is Failed
    fetch: Fetch | None = None  # the download of a source Hearth fetches; None: none needed
    estimate: Verdict | None = None  # the VRAM estimate's verdict, for models whose headers are read
    fits: str = ""  # for a model no card can hold: what would fit (vram.what_fits)


@dataclass(frozen=True)
class Outcome:
    """One reconcile's verdict, before it becomes status."""

    phase: Phase
    message: str
    scheduled: tuple[bool, Reason, str]  # the Scheduled condition: ok, reason, message
    replicas: int = 0
    node: GpuNode | None = None  # the node it runs on
    gpu_class: str | None = None  # the class it runs or will run on
    loading_since: datetime | None = None
    sample: float | None = None  # a warmup measured by this reconcile
    evicted_at: datetime | None = None  # None: unchanged
    evict: tuple[str, ...] = ()  # keys of the models to unload for this one
    evicting: Eviction | None = None
    event_reason: str | None = None  # None: the phase's name
    degraded_reason: Reason | None = None  # None: Failed, Restarts or Healthy as it follows
    fetch: str = ""  # "ensure": the fetch Job must run; "restart": run it anew (a retry); "stop"
    download: DownloadStatus | None = None
    cached: CacheStatus | None = None  # recorded by this reconcile: the download finished


@dataclass
class Plan:
    replicas: int
    node: GpuNode | None
    status: ModelDeploymentStatus
    events: list[Event] = field(default_factory=list)
    evict: tuple[str, ...] = ()
    fetch: str = ""  # see Outcome.fetch


def _failed_spec(message: str, event_reason: Reason | None = None) -> Outcome:
    return Outcome(Phase.FAILED, message, (False, Reason.INVALID_SPEC, message), event_reason=event_reason)


def _evicted(i: Inputs) -> Outcome:
    prev = i.md.status
    why = f"to free the GPU for {i.evicted_for}" if i.evicted_for else "to free the GPU"
    message = f"Unloading {why}" if i.pods else f"Unloaded {why}; a request wakes it"
    return Outcome(
        Phase.EVICTING if i.pods else Phase.COLD,
        message,
        (False, Reason.EVICTED, message),
        evicted_at=prev.evicted_at if prev.phase is Phase.EVICTING and prev.evicted_at else i.now,
    )


def _cold(i: Inputs) -> Outcome:
    prev = i.md.status
    if prev.phase in (Phase.WARM, Phase.LOADING) and sleep_requested(i.md):
        message = "Unloaded on request; a request wakes it"
    elif prev.phase in (Phase.WARM, Phase.LOADING):
        message = f"Scaled to zero after {i.md.spec.scaling.idle_timeout_seconds} s without requests"
    elif prev.phase is Phase.COLD and prev.message:
        message = prev.message
    else:
        message = "Cold: scaled to zero; a request wakes it"
    return Outcome(
        Phase.COLD, message, (False, Reason.SCALED_TO_ZERO, message), replicas=i.md.spec.scaling.min_replicas
    )


def _unplaced(decision: Decision | None, fits: str = "") -> Outcome:
    message = decision.message if decision else "no GPU node known yet"
    # NoSuitableNode: no node could ever hold it, so clients need not wait (the router errs).
    permanent = decision is not None and decision.permanent
    if permanent:
        message += fits
    reason = Reason.NO_SUITABLE_NODE if permanent else Reason.UNSCHEDULABLE
    # A download for a model no card can hold is stopped (none is started: no byte moves).
    return Outcome(Phase.UNSCHEDULABLE, message, (False, reason, message), fetch="stop" if permanent else "")


def _waiting_for_room(i: Inputs, target: GpuNode, decision: Decision) -> Outcome:
    """A GPU is being freed for it: it counts as loading (the router counts down) but holds no
    node yet; a later reconcile places it once the victims are gone."""
    return Outcome(
        Phase.LOADING,
        decision.message,
        (True, Reason.EVICTING, decision.message),
        gpu_class=target.gpu_class,
        loading_since=loading_since(i.md, i.now),
        evict=decision.victims,
        evicting=Eviction(node=target.name, models=[*decision.waiting_for, *decision.victims]),
    )


def _placed(i: Inputs, node: GpuNode) -> Outcome:
    md, prev = i.md, i.md.status
    live = [p for p in i.pods if not p.deleting]
    where = f"on {node.name} ({node.gpu_class})"
    running = Outcome(
        Phase.LOADING,
        f"Loading {md.spec.model} {where}",
        (True, Reason.PLACED, where),
        replicas=max(md.spec.scaling.min_replicas, 1),
        node=node,
        gpu_class=node.gpu_class,
    )
    if any(p.ready and p.ip for p in live):
        sample = None
        if prev.phase is not Phase.WARM and prev.loading_since is not None:
            sample = max((i.now - prev.loading_since).total_seconds(), 0.0)
        return replace(running, phase=Phase.WARM, message=f"Warm {where}", sample=sample)
    broken = next((p for p in live if p.unrunnable), None)
    if broken is not None:
        why = f"cannot start the engine: {broken.waiting_reason}: {broken.waiting_message}".rstrip(": ")
        return replace(running, phase=Phase.FAILED, message=why)
    crashing = next((p for p in live if p.restarts >= CRASHES_BEFORE_FAILED and not p.ready), None)
    if crashing is not None:
        why = (
            f"the engine crashed {crashing.restarts} times (last exit code "
            f"{crashing.last_exit_code}); see kubectl logs {crashing.name}"
        )
        return replace(running, phase=Phase.FAILED, message=why)
    since = loading_since(md, i.now)
    limit = load_deadline(md, i.load_timeout)
    if (i.now - since).total_seconds() > limit:
        return _timed_out(md, live[0] if live else None, limit)
    return replace(running, loading_since=since)


def load_deadline(md: ModelDeployment, minimum: float) -> float:
    """Seconds a load may take before it counts as failed: five warm-up estimates, at least
    `minimum`. A first start whose engine fetches its weights itself (a `uri` source without the
    weights cache, or one only the engine can fetch: s3://) gets FIRST_FETCH_SECONDS —
    gigabytes over a home connection are slow, not broken; an engine that never answers is
    caught by the next start's deadline."""
    limit = max(minimum, LOAD_TIMEOUT_FACTOR * md.warmup_estimate)
    source = md.spec.model_source
    downloaded = downloads.cached(md)  # Hearth fetched them: the load is only a load
    if source is not None and source.uri and not md.status.warmup.samples and not downloaded:
        limit = max(limit, FIRST_FETCH_SECONDS)
    return limit


def _timed_out(md: ModelDeployment, pod: PodView | None, limit: float) -> Outcome:
    if pod is not None and pod.restarts:
        what = f"the engine crashed {pod.restarts} times (last exit code {pod.last_exit_code})"
    else:
        what = f"the engine's readiness check (GET {effective_readiness_path(md.spec)}) never passed"
    why = (
        f"not Ready within {limit:.0f} s: {what}; it was stopped to free the GPU — see the Events "
        f"of pod {pod.name if pod else md.name}; fix the spec, or wake it to try again"
    )
    return Outcome(
        Phase.FAILED,
        why,
        (False, Reason.SCALED_TO_ZERO, "stopped after its load timed out"),
        degraded_reason=Reason.LOAD_TIMEOUT,
    )


STICKY = (Reason.LOAD_TIMEOUT.value, Reason.DOWNLOAD_FAILED.value)


def _still_failed(md: ModelDeployment) -> bool:
    """A load that timed out, or a download that failed, stays Failed (and stopped) until the
    spec changes or a wake comes after the failure: retrying the same never-ready engine would
    only hold a GPU, and the same download would fail the same way."""
    prev = md.status
    degraded = next((c for c in prev.conditions if c.type == ConditionType.DEGRADED.value), None)
    if prev.phase is not Phase.FAILED or degraded is None or degraded.reason not in STICKY:
        return False
    if degraded.observed_generation != md.metadata.get("generation"):
        return False
    wake = parse_time(md.annotations.get(WAKE_REQUESTED_AT))
    return wake is None or degraded.last_transition_time is None or wake <= degraded.last_transition_time


PROGRESS_EVERY = timedelta(seconds=2)  # how often a download's progress is read and written


def next_check(md: ModelDeployment, load_timeout: float, now: datetime | None = None) -> datetime | None:
    """When to look at a model again though nothing changed: its idle deadline, the end of its
    load deadline while it is Loading, the next progress reading while it is Downloading."""
    if md.status.phase is Phase.DOWNLOADING and now is not None:
        return now + PROGRESS_EVERY
    idle = idle_deadline(md)
    since = md.status.loading_since
    if md.status.phase is not Phase.LOADING or since is None:
        return idle
    due = since + timedelta(seconds=load_deadline(md, load_timeout) + 0.5)
    return due if idle is None else min(idle, due)


# --- the download ----------------------------------------------------------------------------------


def _size(n: float) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n:.0f} B"


def download_message(md: ModelDeployment, progress: DownloadStatus | None, waiting: str = "") -> str:
    """`Downloading the weights of qwen2.5-7b: 3.2 GiB of 14.9 GiB at 48.0 MiB/s, about 4 min left`."""
    head = f"Downloading the weights of {md.spec.model}"
    if progress is None or (not progress.bytes and not progress.total_bytes):
        return f"{head}: {waiting}" if waiting else f"{head}: starting"
    text = f"{head}: {_size(progress.bytes)}"
    if progress.total_bytes:
        text += f" of {_size(progress.total_bytes)}"
    if progress.bytes_per_second:
        text += f" at {_size(progress.bytes_per_second)}/s"
    if progress.eta_seconds is not None:
        eta = progress.eta_seconds
        text += f", about {eta / 60:.0f} min left" if eta >= 90 else f", about {eta:.0f} s left"
    return text


def _downloading(i: Inputs, fetch: Fetch, restart: bool = False) -> Outcome:
    progress = fetch.progress or (i.md.status.download if i.md.status.phase is Phase.DOWNLOADING else None)
    message = download_message(i.md, progress, fetch.message)
    return Outcome(
        Phase.DOWNLOADING,
        message,
        (False, Reason.DOWNLOADING, "the weights are downloaded before a GPU is taken"),
        fetch="restart" if restart else "ensure",
        download=progress or DownloadStatus(),
    )


def _download_failed(i: Inputs, fetch: Fetch) -> Outcome:
    uri = i.md.spec.model_source.uri if i.md.spec.model_source else ""
    message = f"downloading the weights from {uri} failed: {fetch.reason}: {fetch.message}"
    message += (
        "; mend the source (or the token, or the cache) and wake it to try again (the dashboard's "
        "Warm up now, or a change of spec)"
    )
    return Outcome(
        Phase.FAILED,
        message,
        (False, Reason.DOWNLOADING, "the weights could not be downloaded"),
        event_reason=Reason.DOWNLOAD_FAILED.value,
        degraded_reason=Reason.DOWNLOAD_FAILED,
    )


def _fetch_step(i: Inputs) -> Outcome | None:
    """The download's part: an outcome while the weights are not cached yet, None once they are
    (or need no download)."""
    fetch, md = i.fetch, i.md
    if fetch is None or downloads.cached(md):
        return None
    if fetch.state == "done":
        return None  # _outcome records the cache
    if fetch.state == "failed":
        retry = md.status.phase is Phase.FAILED  # past _still_failed: a newer wake or spec
        return _downloading(i, Fetch("absent"), restart=True) if retry else _download_failed(i, fetch)
    source = md.spec.model_source
    prefetch = source is not None and source.prefetch
    if sleep_requested(md) and not prefetch:
        return _download_stopped(i, fetch)
    # A download under way is never cut short by idleness (nor one just asked for, whose Job the
    # watch has not brought back yet): only by a user's unload.
    if fetch.state == "running" or md.status.phase is Phase.DOWNLOADING:
        return _downloading(i, fetch)
    if wanted(md, i.pods, i.now) or prefetch:
        return _downloading(i, fetch)
    return None


def _download_stopped(i: Inputs, fetch: Fetch) -> Outcome | None:
    """A user unloaded a model whose weights were downloading: the fetch is stopped (what it
    fetched stays in the cache, and the next wake resumes from there)."""
    if fetch.state != "running" and i.md.status.phase is not Phase.DOWNLOADING:
        return None  # nothing under way: the usual Cold
    message = "Download stopped on request; a request resumes it"
    return Outcome(Phase.COLD, message, (False, Reason.SCALED_TO_ZERO, message), fetch="stop")


def _outcome(i: Inputs) -> Outcome:
    prev = i.md.status
    if i.failure is not None:
        return _failed_spec(i.failure)
    if _still_failed(i.md):
        reason = prev.reason(ConditionType.DEGRADED)
        failed = (
            _download_failed(i, Fetch("failed"))
            if reason == Reason.DOWNLOAD_FAILED.value
            else _timed_out(i.md, None, load_deadline(i.md, i.load_timeout))
        )
        return replace(failed, message=prev.message or "")
    if i.evicted_for is not None or (prev.phase is Phase.EVICTING and i.pods):
        return _evicted(i)
    if i.decision is not None and i.decision.permanent and not downloads.cached(i.md):
        return _unplaced(i.decision, i.fits)  # before any download: it could never run
    step = _fetch_step(i)
    if step is not None:
        return step
    downloaded = with_download(i.md, i.fetch, i.now)
    if downloaded is not i.md:  # decided as if recorded already: a requested download wakes it now
        return replace(_after_download(replace(i, md=downloaded)), cached=downloaded.status.cache)
    return _after_download(i)


def with_download(md: ModelDeployment, fetch: Fetch | None, now: datetime) -> ModelDeployment:
    """The model with the download that just finished recorded in `status.cache` (the same
    model when none did). Downloaded for a request — the model was wanted when the download
    began, or touched since — its end counts as a wake, however long it took; a prefetch nobody
    asked for stays Cold. The reconciler places by it too, so both see the same wish."""
    source = md.spec.model_source
    if fetch is None or fetch.state != "done" or downloads.cached(md) or source is None:
        return md
    got = md.status.download
    size = fetch.bytes or (got.total_bytes or got.bytes if got else None)
    deadline, started = idle_deadline(md), fetch.started
    requested = md.spec.scaling.min_replicas > 0 or (
        deadline is not None and started is not None and deadline >= started
    )
    cache = CacheStatus(
        uri=source.uri or "",
        bytes=size or None,
        size=_size(size) if size else "yes",
        cached_at=now,
        requested=requested,
    )
    return md.model_copy(update={"status": md.status.model_copy(update={"cache": cache})})


def _after_download(i: Inputs) -> Outcome:
    prev = i.md.status
    if not wanted(i.md, i.pods, i.now):
        return _cold(i)
    held = i.node if prev.phase in (Phase.LOADING, Phase.WARM) else None
    if held is not None:
        return _placed(i, held)
    if i.decision is None or i.decision.node is None:
        return _unplaced(i.decision, i.fits)
    if not i.decision.placed:
        return _waiting_for_room(i, i.decision.node, i.decision)
    return _placed(i, i.decision.node)


def plan(i: Inputs) -> Plan:
    outcome = _outcome(i)
    status, events = _status(i, outcome)
    return Plan(
        replicas=outcome.replicas,
        node=outcome.node,
        status=status,
        events=events,
        evict=outcome.evict,
        fetch=outcome.fetch,
    )


def plan_invalid_spec(
    status: ModelDeploymentStatus, pods: list[PodView], generation: int | None, message: str, now: datetime
) -> Plan:
    """A body whose spec the types refuse: Failed, naming the field, nothing running; what was
    measured (warmup samples) is kept for when the spec is mended."""
    outcome = _failed_spec(message, Reason.INVALID_SPEC)
    live = [p for p in pods if not p.deleting]
    new = status.model_copy(
        update={
            "phase": outcome.phase,
            "message": message,
            "node": None,
            "endpoints": [],
            "replicas": len(live),
            "ready_replicas": 0,
            "loading_since": None,
            "evicting": None,
            "conditions": _conditions(status.conditions, now, generation, outcome, degraded=True),
            "observed_generation": generation,
        }
    )
    return Plan(replicas=0, node=None, status=new, events=_events(status, outcome))


# --- outcome → status ----------------------------------------------------------------------------


def _conditions(
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


def _events(prev: ModelDeploymentStatus, outcome: Outcome) -> list[Event]:
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
    size = f" ({_size(cached.bytes)})" if cached.bytes else ""
    return [("Normal", "Downloaded", f"the weights from {cached.uri}{size} are in the cache")]


def _status(i: Inputs, outcome: Outcome) -> tuple[ModelDeploymentStatus, list[Event]]:
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
        conditions=_conditions(prev.conditions, i.now, generation, outcome, degraded, i.estimate),
        observed_generation=generation,
    )
    return status, _download_events(outcome) + _estimate_events(prev, i.estimate) + _events(prev, outcome)


def _estimate_events(prev: ModelDeploymentStatus, estimate: Verdict | None) -> list[Event]:
    """A Warning when the estimate says the spec reserves too little, or the headers cannot be
    read — once per new message."""
    if estimate is None or estimate.warning is None:
        return []
    before = next((c for c in prev.conditions if c.type == ConditionType.VRAM_ESTIMATED.value), None)
    if before is not None and before.message == estimate.condition[2]:
        return []
    return [("Warning", estimate.condition[1].value, estimate.warning)]

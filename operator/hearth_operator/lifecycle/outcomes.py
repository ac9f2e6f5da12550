"""A reconcile's verdict before it becomes status: one `Outcome` per situation — failed spec,
evicted, cold, unplaced, waiting for room, placed, downloading — each its own function. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from hearth_api.activity import sleep_requested
from hearth_api.model_deployment import (
    CacheStatus,
    ConditionType,
    DownloadStatus,
    Eviction,
    ModelDeployment,
    Phase,
    Reason,
    effective_readiness_path,
)
from hearth_api.names import WAKE_REQUESTED_AT
from hearth_api.times import parse_time
from hearth_operator import downloads, world
from hearth_operator.downloads import Fetch
from hearth_operator.lifecycle.inputs import Inputs
from hearth_operator.lifecycle.wanting import (
    load_deadline,
    loading_since,
    size_text,
    wanted,
    with_download,
)
from hearth_operator.placement import Decision, GpuNode
from hearth_operator.pods import PodView

CRASHES_BEFORE_FAILED = 3


class FetchAction(Enum):
    """What the plan wants of the download (its Job)."""

    NONE = "none"  # nothing to say: a Job there is left alone
    ENSURE = "ensure"  # it must run
    RESTART = "restart"  # run it anew: the one there failed and a retry was asked for
    STOP = "stop"  # stop one under way (a user's unload, or a model no card can hold)


@dataclass(frozen=True)
class Placing:
    """What placement answered for this reconcile; decision None: the plan did not ask."""

    decision: Decision | None = None
    fits: str = ""  # for a model no card can hold: what would fit (vram.what_fits)


UNSIZED = (
    "gpu.vramGiB is unset and this operator reads no weights' headers (estimateVram is off): "
    "set gpu.vramGiB to place it"
)


def placing(i: Inputs) -> Placing:
    """Whether the model needs placement now, and what placement answers: a model with no size
    to place by is told so; a download under way is only checked against every card (no GPU is
    taken for a download, but one no card can hold is refused before a byte moves); a wanted
    model holding no node, not being evicted, is placed."""
    md, fetch = i.md, i.fetch
    if i.failure is not None:
        return Placing()
    decision: Decision | None = None
    if md.vram_gib == 0:
        decision = Decision(message=i.estimate.condition[2] if i.estimate else UNSIZED)
    elif fetch is not None and fetch.state != "done":
        decision = i.cluster.never_fits(world.want(md))
    elif i.evicted_for is None and held(i) is None and wanted(with_download(md, fetch, i.now), i.pods, i.now):
        decision = i.cluster.place(world.want(md), i.now)
    fits = i.cluster.what_fits(md) if decision is not None and decision.permanent else ""
    return Placing(decision, fits)


def held(i: Inputs) -> GpuNode | None:
    """The node a Loading or Warm model holds (a node that left the cluster holds nothing)."""
    return i.node if i.md.status.phase in (Phase.LOADING, Phase.WARM) else None


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
    fetch: FetchAction = FetchAction.NONE
    download: DownloadStatus | None = None
    cached: CacheStatus | None = None  # recorded by this reconcile: the download finished


def failed_spec(message: str, event_reason: Reason | None = None) -> Outcome:
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
    return Outcome(
        Phase.UNSCHEDULABLE,
        message,
        (False, reason, message),
        fetch=FetchAction.STOP if permanent else FetchAction.NONE,
    )


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


def download_message(md: ModelDeployment, progress: DownloadStatus | None, waiting: str = "") -> str:
    """`Downloading the weights of qwen2.5-7b: 3.2 GiB of 14.9 GiB at 48.0 MiB/s, about 4 min left`."""
    head = f"Downloading the weights of {md.spec.model}"
    if progress is None or (not progress.bytes and not progress.total_bytes):
        return f"{head}: {waiting}" if waiting else f"{head}: starting"
    text = f"{head}: {size_text(progress.bytes)}"
    if progress.total_bytes:
        text += f" of {size_text(progress.total_bytes)}"
    if progress.bytes_per_second:
        text += f" at {size_text(progress.bytes_per_second)}/s"
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
        fetch=FetchAction.RESTART if restart else FetchAction.ENSURE,
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
        return None  # outcome() records the cache
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
    return Outcome(Phase.COLD, message, (False, Reason.SCALED_TO_ZERO, message), fetch=FetchAction.STOP)


def outcome(i: Inputs, placed: Placing) -> Outcome:
    prev = i.md.status
    if i.failure is not None:
        return failed_spec(i.failure)
    if _still_failed(i.md):
        reason = prev.reason(ConditionType.DEGRADED)
        failed = (
            _download_failed(i, Fetch("failed"))
            if reason == Reason.DOWNLOAD_FAILED.value
            else _timed_out(i.md, None, load_deadline(i.md, i.load_timeout))
        )
        return replace(failed, message=prev.message or "")
    if i.evicted_for is not None or prev.phase is Phase.EVICTING:  # an eviction ends Cold
        return _evicted(i)
    if placed.decision is not None and placed.decision.permanent and not downloads.cached(i.md):
        return _unplaced(placed.decision, placed.fits)  # before any download: it could never run
    step = _fetch_step(i)
    if step is not None:
        return step
    downloaded = with_download(i.md, i.fetch, i.now)
    if downloaded is not i.md:  # decided as if recorded already: a requested download wakes it now
        return replace(_after_download(replace(i, md=downloaded), placed), cached=downloaded.status.cache)
    return _after_download(i, placed)


def _after_download(i: Inputs, placed: Placing) -> Outcome:
    if not wanted(i.md, i.pods, i.now):
        return _cold(i)
    node = held(i)
    if node is not None:
        return _placed(i, node)
    decision = placed.decision
    if decision is None or decision.node is None:
        return _unplaced(decision, placed.fits)
    if not decision.placed:
        return _waiting_for_room(i, decision.node, decision)
    return _placed(i, decision.node)

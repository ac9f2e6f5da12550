"""When a model is wanted, when its load began, how long a load may take, and when to look at
it again though nothing changed. Pure.

A model is *wanted* while `minReplicas ≥ 1`, or while its last touch (the router's
`wake-requested-at` or `last-activity` annotation, whichever is later) lies within
`idleTimeoutSeconds`, or while it is Loading (a load is never cut short by idleness) — unless a
user asked to unload it (`sleep-requested-at`) after that last touch.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hearth_api.activity import idle_deadline, last_touch, sleep_requested
from hearth_api.model_deployment import CacheStatus, ModelDeployment, Phase
from hearth_api.names import WAKE_REQUESTED_AT
from hearth_api.times import parse_time
from hearth_operator import downloads
from hearth_operator.downloads import Fetch
from hearth_operator.pods import PodView

LOAD_TIMEOUT_FACTOR = 5.0  # a load may take this many warm-up estimates (at least the minimum)
FIRST_FETCH_SECONDS = 6 * 3600.0  # a first start that downloads its weights inside the engine
RECENT_WAKE = timedelta(seconds=10)
PROGRESS_EVERY = timedelta(seconds=2)  # how often a download's progress is read and written


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


def size_text(n: float) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{n:.0f} B"


def with_download(md: ModelDeployment, fetch: Fetch | None, now: datetime) -> ModelDeployment:
    """The model with the download that just finished recorded in `status.cache` (the same
    model when none did). Downloaded for a request — the model was wanted when the download
    began, or touched since — its end counts as a wake, however long it took; a prefetch nobody
    asked for stays Cold. The plan places by it too, so placement and outcome see one wish."""
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
        size=size_text(size) if size else "yes",
        cached_at=now,
        requested=requested,
    )
    return md.model_copy(update={"status": md.status.model_copy(update={"cache": cache})})

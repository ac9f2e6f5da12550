"""When a model was last wanted, and when it stops being wanted: read off its annotations and
status. Pure. The operator scales by these; the router's dashboard shows the idle time left.

A *touch* is the router's `wake-requested-at` or `last-activity`, whichever is later (or the end
of a download a request started: `status.cache.requested`); a user's
`sleep-requested-at` newer than every touch asks for it to be unloaded now.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hearth_api.model_deployment import ConditionType, ModelDeployment, Phase
from hearth_api.names import LAST_ACTIVITY, SLEEP_REQUESTED_AT, WAKE_REQUESTED_AT
from hearth_api.times import parse_time


def last_touch(md: ModelDeployment) -> datetime | None:
    stamps = [parse_time(md.annotations.get(k)) for k in (WAKE_REQUESTED_AT, LAST_ACTIVITY)]
    cache = md.status.cache
    if cache is not None and cache.requested:
        # A download a request started ends like a wake: the wait for it, however long, was
        # the request's, and the load follows (the operator wrote it when the download ended).
        stamps.append(cache.cached_at)
    present = [s for s in stamps if s is not None]
    return max(present) if present else None


def sleep_requested(md: ModelDeployment) -> bool:
    """A user asked to unload it (the router's `sleep-requested-at`), and no wake or request
    came after: it goes Cold, also mid-load."""
    sleep = parse_time(md.annotations.get(SLEEP_REQUESTED_AT))
    touch = last_touch(md)
    return sleep is not None and (touch is None or touch <= sleep)


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

"""The whole decision of one reconcile, as data: the children to apply, what to do with the
fetch Job, the models to evict, the status and its Events, and when to look again. The
reconciler only applies it (reconciler.py); nothing is decided twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hearth_api import transitions
from hearth_api.model_deployment import ModelDeploymentStatus, Phase, Reason
from hearth_operator import children, downloads
from hearth_operator.lifecycle.inputs import Inputs
from hearth_operator.lifecycle.outcomes import FetchAction, Outcome, failed_spec, outcome, placing
from hearth_operator.lifecycle.status import Event, conditions, events, status_of
from hearth_operator.lifecycle.wanting import next_check
from hearth_operator.placement import GpuNode
from hearth_operator.pods import PodView

RELEASING = (Phase.COLD, Phase.FAILED, Phase.UNSCHEDULABLE)  # after these the GPU held may be free
HEADERS_RETRY = timedelta(seconds=30)  # a source whose headers did not answer is asked again this often

Notice = tuple[dict[str, Any], Event]  # an Event on another object: (its body, the Event)


@dataclass(frozen=True)
class Plan:
    replicas: int
    node: GpuNode | None
    status: ModelDeploymentStatus
    events: list[Event]
    service: dict[str, Any] | None = None  # None: leave the children alone (a refused spec)
    deployment: dict[str, Any] | None = None
    fetch: FetchAction = FetchAction.NONE
    job_to_create: dict[str, Any] | None = None  # the fetch Job's manifest, to start it
    job_to_delete: str | None = None  # the name of a fetch Job to delete
    evict: tuple[str, ...] = ()  # keys of the models to unload for this one
    notices: tuple[Notice, ...] = ()
    wants_gpu: bool = False  # wanted, and holds no GPU yet: look again when one is freed
    frees_gpu: bool = False  # it just left a phase that held a GPU: those waiting may fit now
    eviction_over: bool = False  # Cold: an eviction asked of it is done
    due: datetime | None = None  # when to reconcile again though nothing changed


def plan(i: Inputs) -> Plan:
    placed = placing(i)
    verdict = outcome(i, placed)
    status, evs = status_of(i, verdict)
    transitions.check(i.md.status.phase, status.phase, i.md.key)
    md = i.md.model_copy(update={"status": status})
    create, delete = _job(i, verdict)
    node = verdict.node
    due = next_check(md, i.load_timeout, i.now)
    if i.estimate is not None and i.estimate.condition[1] is Reason.HEADERS_UNREACHABLE:
        retry = i.now + HEADERS_RETRY
        due = retry if due is None else min(due, retry)
    phase = status.phase
    return Plan(
        replicas=verdict.replicas,
        node=node,
        status=status,
        events=evs,
        # Children follow the plan even for a failed spec (its replicas are then 0): a name
        # clash that appears later must stop what already runs.
        service=children.service(i.md),
        deployment=children.deployment(
            i.md, node.name if node else None, node.vram_gib if node else None, verdict.replicas, i.cache
        ),
        fetch=verdict.fetch,
        job_to_create=create,
        job_to_delete=delete,
        evict=verdict.evict,
        notices=_notices(i, verdict),
        wants_gpu=phase is Phase.UNSCHEDULABLE or (phase is Phase.LOADING and node is None),
        frees_gpu=phase in RELEASING and i.md.status.phase not in (None, phase),
        eviction_over=phase is Phase.COLD,
        due=due,
    )


def _job(i: Inputs, verdict: Outcome) -> tuple[dict[str, Any] | None, str | None]:
    """Start the fetch Job the outcome asks for; delete one that fetches another source, whose
    failure a retry replaces (the watch then brings the next reconcile, which starts anew), or
    whose download a user stopped. A Job being deleted is waited for."""
    fetched = downloads.fetched_source(i.md, i.cache)
    job, action = i.job, verdict.fetch
    if job is None:
        if action is FetchAction.ENSURE and fetched is not None and i.cache is not None:
            return downloads.job(i.md, fetched, i.cache), None
        return None, None
    if job["metadata"].get("deletionTimestamp"):
        return None, None
    done = i.fetch is not None and i.fetch.state == "done"
    if (
        downloads.stale(job, fetched.uri if fetched else None)
        or action is FetchAction.RESTART
        or (action is FetchAction.STOP and not done)
    ):
        return None, str(job["metadata"]["name"])
    return None, None


def _notices(i: Inputs, verdict: Outcome) -> tuple[Notice, ...]:
    """A name clash is told to both: the newer model fails; the one that keeps the name gets a
    Warning Event too, so whoever owns it learns that a second claim was refused."""
    if i.holder is None or verdict.phase is not Phase.FAILED:
        return ()
    field_name, name, body = i.holder
    message = (
        f"modeldeployment/{i.md.name} also claims {name!r} ({field_name}); "
        f"it was refused and this model keeps serving it"
    )
    return ((body, ("Warning", "NameClash", message)),)


def plan_invalid_spec(
    status: ModelDeploymentStatus, pods: list[PodView], generation: int | None, message: str, now: datetime
) -> Plan:
    """A body whose spec the types refuse: Failed, naming the field, nothing running; what was
    measured (warmup samples) is kept for when the spec is mended. Its children cannot be
    rendered from a spec that does not parse: the reconciler scales the Deployment to 0."""
    verdict = failed_spec(message, Reason.INVALID_SPEC)
    transitions.check(status.phase, verdict.phase, "")
    live = [p for p in pods if not p.deleting]
    new = status.model_copy(
        update={
            "phase": verdict.phase,
            "message": message,
            "node": None,
            "endpoints": [],
            "replicas": len(live),
            "ready_replicas": 0,
            "loading_since": None,
            "evicting": None,
            "conditions": conditions(status.conditions, now, generation, verdict, degraded=True),
            "observed_generation": generation,
        }
    )
    return Plan(replicas=0, node=None, status=new, events=events(status, verdict))

"""The Job controller's decisions, as Kubernetes makes them, for the kubelet simulator: a pod at a
time (parallelism 1, completions 1), a new pod after each failure with back-off until
`backoffLimit`, and `podFailurePolicy` rules that fail the Job at once on given exit codes.
Pure: a Job and its pods in, the Job's status and whether to start a pod out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hearth_sim.scheduling import controller_ref

Obj = dict[str, Any]
DEFAULT_BACKOFF_LIMIT = 6


@dataclass(frozen=True)
class Verdict:
    status: Obj
    start_pod: bool  # no pod runs and the Job is not finished: start one
    failures: int  # pods failed so far (the back-off before the next grows with it)


def finished(job: Obj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _exit_code(pod: Obj) -> int | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated is not None:
            return int(terminated.get("exitCode", 0))
    return None


def _fail_job_rule(job: Obj, pod: Obj) -> int | None:
    """The index of the podFailurePolicy rule with action FailJob this failed pod matches."""
    code = _exit_code(pod)
    rules = ((job.get("spec") or {}).get("podFailurePolicy") or {}).get("rules") or []
    for index, rule in enumerate(rules):
        codes = rule.get("onExitCodes") or {}
        values = {int(v) for v in codes.get("values") or []}
        matched = code is not None and (
            code in values if codes.get("operator", "In") == "In" else code not in values
        )
        if matched and rule.get("action") == "FailJob":
            return index
    return None


def verdict(job: Obj, pods: list[Obj], now: str) -> Verdict:
    """The Job's status from its pods (oldest first), and whether a pod should start."""
    spec, previous = job.get("spec") or {}, job.get("status") or {}
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    phases = [(p.get("status") or {}).get("phase") for p in live]
    succeeded = phases.count("Succeeded")
    failed_pods = [p for p, phase in zip(live, phases, strict=True) if phase == "Failed"]
    active = len(live) - succeeded - len(failed_pods)
    status: Obj = {
        "startTime": previous.get("startTime", now),
        "active": active,
        "succeeded": succeeded,
        "failed": len(failed_pods),
        "conditions": list(previous.get("conditions") or []),
    }
    if finished(job):
        return Verdict({**previous, "active": active}, False, len(failed_pods))

    def condition(type_: str, reason: str, message: str) -> Verdict:
        cond = {"type": type_, "status": "True", "reason": reason, "message": message}
        cond |= {"lastTransitionTime": now, "lastProbeTime": now}
        extra = {"completionTime": now} if type_ == "Complete" else {}
        return Verdict({**status, **extra, "conditions": [cond]}, False, len(failed_pods))

    if succeeded:
        return condition("Complete", "Completed", "Reached expected number of succeeded pods")
    for pod in failed_pods:
        rule = _fail_job_rule(job, pod)
        if rule is not None:
            name = pod["metadata"]["name"]
            return condition(
                "Failed",
                "PodFailurePolicy",
                f"Container of pod {name} failed with exit code {_exit_code(pod)} "
                f"matching FailJob rule at index {rule}",
            )
    if len(failed_pods) > int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)):
        return condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    return Verdict(status, active == 0, len(failed_pods))


def pod_from(job: Obj, suffix: str) -> Obj:
    """A pod of the Job, as the Job controller makes it."""
    meta = job["metadata"]
    template = (job.get("spec") or {}).get("template") or {}
    labels = {
        **((template.get("metadata") or {}).get("labels") or {}),
        "batch.kubernetes.io/job-name": meta["name"],
        "job-name": meta["name"],
        "batch.kubernetes.io/controller-uid": meta["uid"],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{meta['name']}-{suffix}",
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": (template.get("metadata") or {}).get("annotations", {}),
            "ownerReferences": [controller_ref("batch/v1", "Job", meta)],
        },
        "spec": dict(template.get("spec") or {}),
        "status": {"phase": "Pending"},
    }

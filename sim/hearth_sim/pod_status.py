"""A pod's status as a kubelet writes it, from what its runner knows. Pure."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def pod_status(
    pod: Obj,
    ip: str,
    state: Obj,
    ready: bool,
    *,
    stamp: str,
    phase: str = "Running",
    restarts: int = 0,
    last: Obj | None = None,
    sidecars: list[tuple[Obj, int | None]] | None = None,  # each native sidecar, its exit code
) -> Obj:
    cond = "True" if ready else "False"
    container = (pod["spec"].get("containers") or [{}])[0]
    status: Obj = {
        "phase": phase,
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "hostIP": ip,
        "startTime": pod["metadata"].get("creationTimestamp", stamp),
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": cond},
            {"type": "Ready", "status": cond, "lastTransitionTime": stamp},
        ],
        "containerStatuses": [
            {
                "name": container.get("name", "main"),
                "image": container.get("image", ""),
                "ready": ready,
                "started": "running" in state,
                "restartCount": restarts,
                "state": state,
                "lastState": last or {},
            }
        ],
    }
    if sidecars:
        status["initContainerStatuses"] = [
            {
                "name": c.get("name", "sidecar"),
                "image": c.get("image", ""),
                "ready": code is None,
                "started": code is None,
                "restartCount": 0,
                "state": {"running": {"startedAt": stamp}}
                if code is None
                else {"terminated": {"exitCode": code, "finishedAt": stamp}},
            }
            for c, code in sidecars
        ]
    return status


def crash_loop(code: int, delay: float, stamp: str) -> tuple[Obj, Obj]:
    """A container that exited and is restarted after `delay`: its last state and its state."""
    reason = "Error" if code else "Completed"
    last = {"terminated": {"exitCode": code, "reason": reason, "finishedAt": stamp}}
    message = f"back-off {delay:g}s restarting failed container"
    return last, {"waiting": {"reason": "CrashLoopBackOff", "message": message}}

"""A model's Pods as the lifecycle sees them: ready or not, why they wait, how often they
crashed. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Waiting reasons that retrying will not cure: the spec (image, config) must change.
UNRUNNABLE = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError")


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

    @property
    def unrunnable(self) -> bool:
        return self.waiting_reason in UNRUNNABLE


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

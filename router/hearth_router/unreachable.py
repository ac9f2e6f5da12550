"""Endpoints that just refused a connection, rested for a few seconds: their pod is restarting,
and the operator will soon say so (or list it again)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from hearth_api.model_deployment import ModelDeployment


@dataclass
class Unreachable:
    rest_seconds: float  # settings.unreachable_retry_seconds
    until: dict[str, float] = field(default_factory=dict)  # endpoint → until when it is not tried

    def mark_down(self, endpoint: str) -> None:
        now = time.monotonic()
        self.until = {e: t for e, t in self.until.items() if t > now}  # the rested drop out
        self.until[endpoint] = now + self.rest_seconds

    def usable(self, md: ModelDeployment) -> list[str]:
        """The model's Ready endpoints, less those that just refused a connection."""
        now = time.monotonic()
        return [e for e in md.status.endpoints if self.until.get(e, 0.0) <= now]

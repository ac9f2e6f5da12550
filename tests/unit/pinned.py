"""Placement pinned to one answer, for tests of the lifecycle that fix what placement says and
look at what the plan makes of it (the plan still decides whether to ask)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hearth_api.model_deployment import ModelDeployment
from hearth_operator.placement import Decision, Want


@dataclass(frozen=True)
class Pinned:
    decision: Decision | None = None  # None: no GPU node known yet
    fits: str = ""
    asked: list[str] | None = None  # when a list: what the plan asked ("place", "never_fits")

    def place(self, want: Want, now: datetime) -> Decision:
        if self.asked is not None:
            self.asked.append("place")
        return self.decision or Decision(message="no GPU node known yet")

    def never_fits(self, want: Want) -> Decision | None:
        if self.asked is not None:
            self.asked.append("never_fits")
        return self.decision if self.decision is not None and self.decision.permanent else None

    def what_fits(self, md: ModelDeployment) -> str:
        return self.fits

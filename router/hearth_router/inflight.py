"""The requests this replica holds, by id (what a cancel or the drain deadline ends), the
streams still finishing their cleanup, and whether a drain has begun (drain.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol


class Cancellable(Protocol):
    def cancel(self) -> Any: ...


@dataclass
class InFlight:
    active: dict[str, Cancellable] = field(default_factory=dict)  # request id → what cancels it
    background: set[asyncio.Task[None]] = field(default_factory=set)  # streams finishing their cleanup
    drain_started: float | None = None  # monotonic time of the SIGTERM that began a drain

    @property
    def draining(self) -> bool:
        return self.drain_started is not None

    def begin_drain(self) -> None:
        self.drain_started = time.monotonic()

    def finish_in_background(self, task: asyncio.Task[None]) -> None:
        """Keep a reference to a task that ends on its own (the loop holds tasks weakly)."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)

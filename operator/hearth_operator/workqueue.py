"""Which ModelDeployments to reconcile, and when: a key at a time, never two runs of one key at
once. A kick of a key already running coalesces into one more run after it; a run that fails is
retried with capped exponential back-off (not every second forever); `at(key, when)` kicks a key
at a moment (an idle deadline) — one timer per key, the latest wins."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

log = logging.getLogger("hearth.operator.queue")


class WorkQueue:
    def __init__(
        self,
        work: Callable[[str], Awaitable[None]],
        on_error: Callable[[str], None] = lambda key: None,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        transient: Callable[[Exception], bool] = lambda exc: False,
    ) -> None:
        self._work, self._on_error, self._transient = work, on_error, transient
        self._backoff, self._max_backoff = backoff, max_backoff
        self._dirty: set[str] = set()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.failures: dict[str, int] = {}  # key → failed runs in a row

    def kick(self, key: str) -> None:
        if key in self._running:
            self._dirty.add(key)
            return
        self._running[key] = asyncio.create_task(self._loop(key), name=f"reconcile {key}")

    def at(self, key: str, when: datetime | None) -> None:
        """Kick `key` at `when` (replacing its earlier timer); None cancels the timer."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if when is None:
            return
        delay = max((when - datetime.now(UTC)).total_seconds(), 0.0)
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, key)

    def delay(self, key: str) -> float:
        """How long to wait before retrying `key` after its latest failure."""
        failures = self.failures.get(key, 0)
        return 0.0 if failures == 0 else min(self._backoff * 2 ** (failures - 1), self._max_backoff)

    def forget(self, key: str) -> None:
        self.at(key, None)
        self.failures.pop(key, None)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._running.values():
            task.cancel()

    async def idle(self) -> None:
        """Return once no key is running (kicks made meanwhile run first)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.kick(key)

    async def _loop(self, key: str) -> None:
        try:
            while True:
                self._dirty.discard(key)
                try:
                    await self._work(key)
                except Exception as exc:
                    self.failures[key] = self.failures.get(key, 0) + 1
                    self._on_error(key)
                    wait = self.delay(key)
                    if self._transient(exc):  # the API server away a moment: a line, not a trace
                        log.warning(
                            "reconciling %s failed (%d in a row): %s; retrying in %.1f s",
                            key,
                            self.failures[key],
                            exc,
                            wait,
                        )
                    else:
                        log.exception(
                            "reconciling %s failed (%d in a row); retrying in %.1f s",
                            key,
                            self.failures[key],
                            wait,
                        )
                    await asyncio.sleep(wait)
                    self._dirty.add(key)
                else:
                    self.failures.pop(key, None)
                if key not in self._dirty:
                    return
        finally:
            self._running.pop(key, None)

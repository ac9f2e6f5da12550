"""A change that many tasks wait for, each with its own time limit."""

from __future__ import annotations

import asyncio


class Signal:
    """`notify()` wakes every task in `wait()` at once; a wait that sees no change within its
    limit returns False. Waiters then re-read the state they care about."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        # A fresh Event for the next round, so a waiter never sees a change twice.
        old, self._event = self._event, asyncio.Event()
        old.set()

    async def wait(self, within: float) -> bool:
        try:
            async with asyncio.timeout(within):
                await self._event.wait()
        except TimeoutError:
            return False
        return True

"""A change that many tasks wait for, each with its own time limit."""

from __future__ import annotations

import asyncio

SLICE = 64  # waiters woken per turn of the event loop


class Signal:
    """`notify()` wakes every task in `wait()`; a wait that sees no change within its limit
    returns False. Waiters then re-read the state they care about.

    A thousand streams waiting on one model all wake on its change, and each then does a little
    work (and often sends an event). Woken all in one turn of the event loop, they would hold it
    for tens of milliseconds while new requests wait for their first event; so they are woken
    `SLICE` at a time, one turn after another, in the order they began to wait, and what
    arrives meanwhile is served between the slices.
    """

    def __init__(self) -> None:
        # A dict as an ordered set: a wait that ends on its own leaves in O(1).
        self._waiting: dict[asyncio.Future[bool], None] = {}

    def notify(self) -> None:
        if self._waiting:
            waiters, self._waiting = list(self._waiting), {}
            _wake(waiters, 0)

    async def wait(self, within: float) -> bool:
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[bool] = loop.create_future()
        self._waiting[woken] = None
        # A timer, not asyncio.timeout: no cancellation to raise and catch on every quiet second.
        timer = loop.call_later(within, _settle, woken, False)
        try:
            return await woken
        finally:
            timer.cancel()
            self._waiting.pop(woken, None)


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


def _wake(waiters: list[asyncio.Future[bool]], start: int) -> None:
    for future in waiters[start : start + SLICE]:
        _settle(future, True)
    if start + SLICE < len(waiters):
        asyncio.get_running_loop().call_soon(_wake, waiters, start + SLICE)

"""The router's change signal: every waiter woken, a slice per turn of the event loop, in the
order they began to wait; a quiet wait ends on its own and leaves nothing behind; a waiter of
one model is not woken by another's change; a download's figures aged from when they changed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from hearth_router.registry import Registry
from hearth_router.signals import SLICE, Signal

from .test_router_app import md_body


async def test_a_change_wakes_every_waiter_in_order_a_slice_per_turn() -> None:
    signal = Signal()
    woken: list[int] = []

    async def waiter(i: int) -> None:
        assert await signal.wait(10)
        woken.append(i)

    n = 3 * SLICE + 5
    tasks = [asyncio.create_task(waiter(i)) for i in range(n)]
    await asyncio.sleep(0)  # every waiter is waiting
    signal.notify()
    await asyncio.sleep(0)  # one turn: the first slice has run, the rest not yet
    assert woken == list(range(SLICE))
    await asyncio.gather(*tasks)
    assert woken == list(range(n))


async def test_a_quiet_wait_ends_false_and_is_forgotten() -> None:
    signal = Signal()
    assert await signal.wait(0.01) is False
    assert not signal._waiting  # nothing piles up between changes
    later = asyncio.create_task(signal.wait(10))
    await asyncio.sleep(0)
    signal.notify()
    assert await later is True


async def test_a_cancelled_waiter_leaves_and_does_not_stop_the_others() -> None:
    signal = Signal()
    gone = asyncio.create_task(signal.wait(10))
    stays = asyncio.create_task(signal.wait(10))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    signal.notify()
    assert await stays is True
    assert gone.cancelled() and not signal._waiting


async def test_a_request_waiting_for_its_model_sleeps_through_other_models_changes() -> None:
    registry = Registry(None)
    registry.apply("ADDED", md_body("Cold"))
    other = md_body("Cold")
    other["metadata"]["name"] = "other"
    waiting = asyncio.create_task(registry.wait_change(10, "default/medium"))
    anything = asyncio.create_task(registry.wait_change(10))
    await asyncio.sleep(0)
    registry.apply("ADDED", other)
    await asyncio.sleep(0)
    await asyncio.wait_for(anything, 1)  # the dashboard's feed hears every change
    assert not waiting.done()
    registry.apply("MODIFIED", md_body("Loading"))
    await asyncio.wait_for(waiting, 1)


def test_download_figures_are_aged_from_when_they_changed_not_from_any_change() -> None:
    registry, key = Registry(None), "default/medium"
    body = md_body("Downloading", download={"bytes": 1, "totalBytes": 10, "bytesPerSecond": 1.0})
    registry.apply("ADDED", body)
    read_long_ago = registry.entries[key].download_seen - 100
    registry.entries[key] = replace(registry.entries[key], download_seen=read_long_ago)
    body["metadata"]["annotations"] = {"hearth.dev/last-request": "now"}  # the router's touch
    registry.apply("MODIFIED", body)
    assert registry.entries[key].download_seen == read_long_ago
    body["status"]["download"] = {"bytes": 3, "totalBytes": 10, "bytesPerSecond": 1.0}
    registry.apply("MODIFIED", body)
    assert registry.entries[key].download_age < 50

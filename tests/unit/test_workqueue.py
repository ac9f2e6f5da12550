"""The operator's work queue: one run per key at a time, coalesced kicks, capped back-off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hearth_operator.workqueue import WorkQueue


async def test_kicks_during_a_run_coalesce_into_one_more_run() -> None:
    runs: list[str] = []
    gate = asyncio.Event()

    async def work(key: str) -> None:
        runs.append(key)
        await gate.wait()

    queue = WorkQueue(work)
    queue.kick("a")
    await asyncio.sleep(0)
    for _ in range(5):
        queue.kick("a")
    gate.set()
    await asyncio.wait_for(queue.idle(), 5)
    assert runs == ["a", "a"]


async def test_failures_back_off_exponentially_up_to_a_cap_and_reset_on_success() -> None:
    queue = WorkQueue(lambda key: asyncio.sleep(0), backoff=0.5, max_backoff=4.0)
    delays = []
    for failures in range(1, 7):
        queue.failures["a"] = failures
        delays.append(queue.delay("a"))
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]

    outcomes = iter([RuntimeError("409"), None])
    errors: list[str] = []

    async def flaky(key: str) -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    retrying = WorkQueue(flaky, on_error=errors.append, backoff=0.01)
    retrying.kick("b")
    await asyncio.wait_for(retrying.idle(), 5)
    assert errors == ["b"] and retrying.failures == {}


async def test_a_key_can_be_kicked_at_a_moment_and_the_latest_timer_wins() -> None:
    kicked = asyncio.Event()
    seen: list[str] = []

    async def work(key: str) -> None:
        seen.append(key)
        kicked.set()

    queue = WorkQueue(work)
    queue.at("a", datetime.now(UTC) + timedelta(hours=1))
    queue.at("a", datetime.now(UTC))  # replaces the hour-long timer
    await asyncio.wait_for(kicked.wait(), 5)
    queue.at("b", datetime.now(UTC) + timedelta(hours=1))
    queue.forget("b")
    queue.close()
    assert seen == ["a"]

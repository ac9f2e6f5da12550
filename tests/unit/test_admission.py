"""Admission and the line: the waiter limit, fail-fast for models that cannot run, places in
line while every slot is taken, and a freed slot going to the head of the line."""

from __future__ import annotations

import asyncio

import pytest

from hearth_router.errors import RouterError
from hearth_router.progress import Queued
from tests.unit.router_world import build, model


async def test_past_the_waiter_limit_a_request_is_turned_away_with_retry_after() -> None:
    s = build(max_waiters=2)
    s.registry.apply("ADDED", model(phase="Cold"))
    entry = s.admissions.resolve("m")
    first, second = await s.admissions.admit(entry), await s.admissions.admit(entry)
    with pytest.raises(RouterError) as caught:
        await s.admissions.admit(entry)
    assert caught.value.status == 429 and caught.value.code == "too_many_waiters"
    assert caught.value.retry_after == 15
    assert s.admissions.waiters.count("default/m") == 2
    first.close()
    first.close()  # idempotent: the count is not given back twice
    third = await s.admissions.admit(entry)
    assert s.admissions.waiters.count("default/m") == 2
    second.close(), third.close()
    assert s.admissions.waiters.count("default/m") == 0


async def test_a_model_that_cannot_run_fails_fast() -> None:
    s = build()
    failed = model(phase="Failed")
    failed["status"]["message"] = "no such image"
    s.registry.apply("ADDED", failed)
    with pytest.raises(RouterError) as caught:
        await s.admissions.admit(s.admissions.resolve("m"))
    assert caught.value.code == "model_failed" and "m cannot run: no such image" in caught.value.message


async def test_a_freed_slot_goes_to_the_head_of_the_line_and_those_behind_are_told_their_place() -> None:
    s = build()
    s.registry.apply("ADDED", model(phase="Warm", concurrency=1))
    entry = s.admissions.resolve("m")
    holder = await s.admissions.admit(entry)
    assert [u async for u in holder.wait()] == []  # a free slot: nothing to wait for
    behind = [await s.admissions.admit(entry) for _ in range(2)]
    told: dict[int, list[int]] = {0: [], 1: []}

    async def wait(n: int) -> None:
        async for update in behind[n].wait():
            assert isinstance(update, Queued)
            told[n].append(update.position)

    waiting = [asyncio.create_task(wait(n)) for n in range(2)]
    while not (told[0] and told[1]):
        await s.registry.wait_change(0.01)
    assert (told[0][0], told[1][0]) == (1, 2)
    holder.close()
    await asyncio.wait_for(waiting[0], 5)  # the head gets the slot
    assert not waiting[1].done() and behind[0].endpoint == "http://127.10.0.1:8000"
    behind[0].close()
    await asyncio.wait_for(waiting[1], 5)
    behind[1].close()
    assert s.line.in_flight(["http://127.10.0.1:8000"]) == 0


async def test_an_unknown_name_lists_the_known_ones() -> None:
    s = build()
    s.registry.apply("ADDED", model("small"))
    with pytest.raises(RouterError) as caught:
        s.admissions.resolve("nope")
    assert caught.value.status == 404 and "Known models: small" in caught.value.message

"""Holding: a request for a cold model is told how the load goes until the model is Warm, and
is told why when it fails or goes away meanwhile."""

from __future__ import annotations

import asyncio

import pytest

from hearth_router import progress
from hearth_router.errors import RouterError
from tests.unit.router_world import build, model


async def test_a_cold_model_is_counted_down_until_it_is_warm() -> None:
    s = build()
    s.registry.apply("ADDED", model(phase="Cold"))
    updates: list[progress.Loading | progress.Downloading] = []

    async def hold() -> None:
        async for update in s.admissions.holding.hold(s.registry.get("default/m")):  # type: ignore[arg-type]
            updates.append(update)
            if len(updates) == 2:
                s.registry.apply("MODIFIED", model(phase="Warm"))

    await asyncio.wait_for(hold(), 5)
    assert len(updates) == 2 and all(isinstance(u, progress.Loading) for u in updates)
    assert updates[0].estimated_time == 15  # the spec's expected warm-up, before any sample


async def test_a_model_that_fails_while_held_ends_the_wait_saying_why() -> None:
    s = build()
    s.registry.apply("ADDED", model(phase="Cold"))
    entry = s.registry.get("default/m")
    assert entry is not None
    failed = model(phase="Failed")
    failed["status"]["message"] = "the engine crashed 3 times"
    with pytest.raises(RouterError) as caught:
        async for _ in s.admissions.holding.hold(entry):
            s.registry.apply("MODIFIED", failed)
    assert caught.value.status == 503 and caught.value.code == "model_failed"
    assert "m failed to load: the engine crashed 3 times" in caught.value.message


async def test_a_model_deleted_while_held_is_a_clear_error() -> None:
    s = build()
    s.registry.apply("ADDED", model(phase="Cold"))
    entry = s.registry.get("default/m")
    assert entry is not None
    with pytest.raises(RouterError) as caught:
        async for _ in s.admissions.holding.hold(entry):
            s.registry.apply("DELETED", {"metadata": {"name": "m", "namespace": "default"}})
    assert caught.value.code == "model_deleted"


async def test_a_warm_model_is_not_held_at_all() -> None:
    s = build()
    s.registry.apply("ADDED", model(phase="Warm"))
    entry = s.registry.get("default/m")
    assert entry is not None
    assert [u async for u in s.admissions.holding.hold(entry)] == []

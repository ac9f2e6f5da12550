"""Running a request against an engine: one retry loop for streamed and whole answers. An
engine that never took the request is rested and the request waits again at its place, up to
ATTEMPTS times; a whole answer comes back named as the client asked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hearth_router import chunks
from hearth_router.answers import ATTEMPTS, Granted, Refused, attempts
from hearth_router.errors import EngineUnreachable, RouterError
from tests.unit.router_world import ScriptedEngine, build, model, unreachable

IDENT = chunks.StreamIdentity("chatcmpl-1", 0, "the-name-asked", True)


async def test_a_refused_request_waits_again_and_is_sent_to_an_endpoint_that_is_up() -> None:
    s = build()
    s.registry.apply("ADDED", model(endpoints=2))
    admission = await s.admissions.admit(s.admissions.resolve("m"))
    engine = ScriptedEngine([unreachable("http://127.10.0.1:8000"), [{"n": 1}]])

    async def call(endpoint: str) -> AsyncIterator[dict[str, int]]:
        async for chunk in engine.stream(endpoint, "/v1/chat/completions", {}):
            yield chunk

    with admission:
        seen = [item async for item in attempts(admission, call)]
    granted = [item.endpoint for item in seen if isinstance(item, Granted)]
    assert [type(item).__name__ for item in seen] == ["Granted", "Refused", "Granted", "dict"]
    assert granted == engine.calls == ["http://127.10.0.1:8000", "http://127.10.0.2:8000"]
    assert s.admissions.waiters.count("default/m") == 0 and s.line.inflight == {}


async def test_after_the_last_attempt_the_refusal_is_the_answer() -> None:
    s = build()
    s.registry.apply("ADDED", model(endpoints=ATTEMPTS))
    admission = await s.admissions.admit(s.admissions.resolve("m"))

    async def refuse(endpoint: str) -> AsyncIterator[None]:
        raise unreachable(endpoint)
        yield None

    refused: list[Refused] = []
    with admission, pytest.raises(EngineUnreachable):
        async for item in attempts(admission, refuse):
            if isinstance(item, Refused):
                refused.append(item)
    assert len(refused) == ATTEMPTS - 1
    assert s.admissions.waiters.count("default/m") == 0 and s.line.inflight == {}


async def test_a_whole_answer_is_named_as_asked_and_its_slot_given_back() -> None:
    engine = ScriptedEngine([{"id": "engine-id", "model": "m", "choices": [{"text": "hi"}]}])
    s = build(engine)
    s.registry.apply("ADDED", model())
    answer = await s.answers.complete(s.admissions.resolve("m"), {"prompt": "x"}, "/v1/completions", IDENT)
    assert (answer["id"], answer["model"]) == ("chatcmpl-1", "the-name-asked")
    assert s.line.inflight == {} and s.inflight.active == {}
    assert s.line.answer_seconds("default/m") is not None  # measured, for the queue estimates


async def test_a_whole_answer_past_the_waiter_limit_is_a_429_and_counted() -> None:
    s = build(max_waiters=1)
    s.registry.apply("ADDED", model(phase="Cold"))
    entry = s.admissions.resolve("m")
    with await s.admissions.admit(entry):
        with pytest.raises(RouterError) as caught:
            await s.answers.complete(entry, {}, "/v1/completions", IDENT)
    assert caught.value.status == 429
    counted = s.metrics.requests.labels(model="m", outcome="too_many_waiters")._value.get()
    assert counted == 1

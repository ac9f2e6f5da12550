"""One streamed request, start to end, against a scripted engine: the events in order, the
engine's text passed through, and a refusal before the first byte told and retried."""

from __future__ import annotations

from typing import Any

from hearth_router import chunks
from hearth_router.streaming import StreamJob
from tests.unit.router_world import ScriptedEngine, build, model, unreachable

IDENT = chunks.StreamIdentity("chatcmpl-1", 0, "m", True)


def text(piece: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}


ANSWER = [text("Hel"), text("lo"), {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}]


async def events(engine: ScriptedEngine, endpoints: int = 1) -> list[Any]:
    s = build(engine)
    s.registry.apply("ADDED", model(endpoints=endpoints))
    admission = await s.admissions.admit(s.admissions.resolve("m"), patient=True)
    job = StreamJob(s.streams, admission, {"messages": []}, IDENT, "/v1/chat/completions")
    body = job.opening() + b"".join([frames async for frames in job.sse()])
    assert s.line.inflight == {} and s.admissions.waiters.count("default/m") == 0
    parsed = [chunks.parse_sse_line(line) for line in body.decode().splitlines() if line]
    return [p for p in parsed if p is not None]


def statuses(seen: list[Any]) -> list[str]:
    return [e.get("status", "text") for e in seen if isinstance(e, dict)]


async def test_a_warm_model_streams_routing_generating_text_done() -> None:
    seen = await events(ScriptedEngine([ANSWER]))
    assert statuses(seen) == ["routing", "generating", "text", "text", "done"] and seen[-1] == "[DONE]"
    done = seen[-2]
    assert done["content"] == "Hello" and done["usage"]["completion_tokens"] == 2


async def test_an_engine_that_refuses_before_the_first_byte_is_told_and_tried_again() -> None:
    engine = ScriptedEngine([unreachable("http://127.10.0.1:8000"), ANSWER])
    seen = await events(engine, endpoints=2)
    assert statuses(seen) == ["routing", "generating", "loading", "generating", "text", "text", "done"]
    assert "engine went away" in seen[2]["message"]
    assert engine.calls == ["http://127.10.0.1:8000", "http://127.10.0.2:8000"]

"""The router's pure parts: chunk shapes, countdown text, replica choice, the FIFO of slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hearth_api.model_deployment import ModelDeployment
from hearth_router import chunks, progress, routing
from hearth_router.errors import unknown_model
from hearth_router.slots import Slots

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
IDENT = chunks.StreamIdentity("chatcmpl-1", 1700000000, "medium")


def test_status_events_are_chunks_with_an_empty_delta_and_open_webui_status() -> None:
    c = chunks.status_chunk(
        IDENT,
        "loading",
        "Warming up medium on 3090… ~11 s",
        timestamp=1.5,
        estimated_time=11,
        progress=0.2,
        backend="3090",
        queue_position=None,
    )
    assert c["object"] == "chat.completion.chunk" and c["choices"] == [
        {"index": 0, "delta": {}, "finish_reason": None}
    ]
    assert (c["status"], c["estimated_time"], c["backend"]) == ("loading", 11, "3090")
    assert "queue_position" not in c
    assert c["event"] == {
        "type": "status",
        "data": {"description": "Warming up medium on 3090… ~11 s", "done": False},
    }


def test_text_completion_chunks_have_their_own_shape() -> None:
    ident = chunks.StreamIdentity("cmpl-1", 1, "m", chat=False)
    c = chunks.status_chunk(ident, "routing", "Selecting backend…", timestamp=0)
    assert c["object"] == "text_completion" and c["choices"][0] == {
        "index": 0,
        "text": "",
        "finish_reason": None,
    }


def test_the_last_event_can_hide_its_summary() -> None:
    c = chunks.status_chunk(
        IDENT, "done", "On 3090", timestamp=0, done=True, hidden=True, finish_reason="stop"
    )
    assert c["event"]["data"] == {"description": "On 3090", "done": True, "hidden": True}
    assert c["choices"][0]["finish_reason"] == "stop"


def test_error_events_carry_an_openai_error_object() -> None:
    c = chunks.error_chunk(IDENT, "the engine died", timestamp=0, code="upstream_died")
    assert c["status"] == "error" and c["error"]["message"] == "the engine died"
    assert c["event"]["data"]["done"] is True
    assert chunks.frame(c).startswith(b"data: {") and chunks.frame(c).endswith(b"\n\n")


def test_engine_chunks_are_renamed_and_sse_lines_parsed() -> None:
    upstream = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 5,
        "model": "internal",
        "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}],
    }
    out = chunks.rewrite_upstream(upstream, IDENT)
    assert (out["id"], out["model"], out["created"]) == ("chatcmpl-1", "medium", 1700000000)
    assert chunks.delta_text(out) == "hi"
    assert chunks.parse_sse_line("data: [DONE]") == "[DONE]"
    assert chunks.parse_sse_line(": keep-alive") is None
    assert chunks.parse_sse_line('data: {"a": 1}') == {"a": 1}


def medium(**status: Any) -> ModelDeployment:
    """`medium` with this status; 9 s is its prior when the status has no estimate."""
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "medium", "namespace": "default"},
            "spec": {
                "model": "medium",
                "engine": "sim",
                "gpu": {"vramGiB": 14},
                "warmup": {"expectedSeconds": 9},
            },
            "status": status,
        }
    )


@pytest.mark.parametrize(
    ("raw", "message", "eta"),
    [
        ({"phase": "Cold", "warmup": {"estimateSeconds": 23}}, "Waking medium… ~23 s", 23),
        (
            {
                "phase": "Loading",
                "gpuClass": "rtx3090",
                "loadingSince": NOW - timedelta(seconds=12),
                "warmup": {"estimateSeconds": 23},
            },
            "Warming up medium on 3090… ~11 s",
            11,
        ),
        (
            {
                "phase": "Loading",
                "gpuClass": "rtx3090",
                "loadingSince": NOW - timedelta(seconds=30),
                "warmup": {"estimateSeconds": 23},
            },
            "Warming up medium on 3090… taking longer than usual — 30 s so far, usually 23 s",
            6,
        ),
        (
            {
                "phase": "Loading",
                "gpuClass": "rtx3090",
                "message": "whatever the operator says to people",
                "evicting": {"node": "gpu-3090", "models": ["default/big"]},
                "loadingSince": NOW,
                "warmup": {"estimateSeconds": 15},
            },
            "Freeing the 3090 on gpu-3090: unloading big… ~15 s",
            15,
        ),
        (
            {"phase": "Loading", "gpuClass": "rtx3090", "message": "Freeing the GPU", "loadingSince": NOW},
            "Warming up medium on 3090… ~9 s",
            9,
        ),
        ({"phase": "Evicting"}, "Waiting for medium to finish unloading… ~9 s", 9),
    ],
)
def test_loading_messages_count_down_and_say_what_is_happening(
    raw: dict[str, Any], message: str, eta: int
) -> None:
    update = progress.loading(medium(**raw), NOW)
    assert (update.message, update.estimated_time) == (message, eta)
    assert 0 <= update.progress <= 0.99


def test_the_countdown_never_counts_up() -> None:
    cold = medium(phase="Cold", warmup={"estimateSeconds": 23})
    told = progress.Loading("Waking medium… ~17 s", 17, 0.2)
    assert progress.loading(cold, NOW, told).message == "Waking medium… ~17 s"
    assert progress.loading(cold, NOW, progress.Loading("", 30, 0.0)).estimated_time == 23


def test_an_overrun_says_so_and_never_shows_zero() -> None:
    def at(seconds: float, previous: progress.Loading | None = None) -> progress.Loading:
        loading = medium(
            phase="Loading",
            gpuClass="rtx3090",
            loadingSince=NOW - timedelta(seconds=seconds),
            warmup={"estimateSeconds": 15, "byGpuClass": {"rtx3090": [14, 15, 16, 21]}},
        )
        return progress.loading(loading, NOW, previous)

    last_normal = at(14.5)
    assert (last_normal.estimated_time, last_normal.overdue) == (1, False)
    over = at(18, last_normal)  # a rise, but the message says why
    assert over.overdue and over.estimated_time == 3  # up to the slowest recent load, 21 s
    assert over.message == "Warming up medium on 3090… taking longer than usual — 18 s so far, usually 15 s"
    later = at(30, over)  # past every load seen: a quarter of the usual time, capped by what was said
    assert later.overdue and later.estimated_time == 3 and at(30).estimated_time == 4
    assert all(at(s).estimated_time >= 1 for s in range(0, 120))


def test_answer_times_come_from_what_is_known() -> None:
    measured = progress.answer_seconds(2.5, 100, 50.0, 40.0)
    assert (measured.seconds, measured.guess) == (2.5, False)  # measured answers first
    assert progress.answer_seconds(None, 100, 50.0, 40.0) == progress.AnswerTime(2.0, False)  # max_tokens
    assert progress.answer_seconds(None, None, None, 40.0) == progress.AnswerTime(256 / 40, True)  # a prior


def test_a_queue_estimate_says_when_it_is_a_first_guess() -> None:
    guess = progress.queued("m", 8, progress.AnswerTime(2.0, True), capacity=4, now=0, waited=0)
    assert guess.estimated_time == 4
    assert guess.message == (
        "Queued behind 8 requests for m… ~4 s (a first estimate: no answer from m measured yet)"
    )
    one = progress.queued("m", 1, progress.AnswerTime(0.01, False), capacity=16, now=0, waited=0)
    assert (one.estimated_time, one.message) == (1, "Queued behind 1 request for m… ~1 s")  # never 0


def test_a_queue_estimate_counts_down_and_falls_as_the_line_moves() -> None:
    answer = progress.AnswerTime(2.0, False)
    told = progress.queued("m", 20, answer, capacity=4, now=100, waited=0)  # 10 s
    shown = [told.estimated_time]
    for second in range(1, 9):  # the line stalls, then moves fast: nothing new about answer times
        position = 20 if second < 5 else 20 - 4 * (second - 4)
        told = progress.queued("m", position, answer, 4, now=100 + second, waited=second, previous=told)
        shown.append(told.estimated_time)
        assert "longer" not in told.message
    assert shown == [10, 9, 8, 7, 6, 5, 4, 3, 2]  # never up; with the line, faster
    stalled = [told]  # then the line stalls past the estimate: a rise, and the message says why
    for second in range(9, 12):
        stalled.append(progress.queued("m", 4, answer, 4, 100 + second, second, previous=stalled[-1]))
    assert [q.estimated_time for q in stalled] == [2, 1, 2, 1]
    assert [q.overdue for q in stalled] == [False, False, True, True]  # and stays said
    assert stalled[-1].message == (
        "Queued behind 4 requests for m… ~1 s (taking longer than estimated — 11 s so far)"
    )


def test_a_queue_estimate_rises_at_once_when_answers_prove_slower_and_says_so() -> None:
    told = progress.queued("m", 8, progress.AnswerTime(1.0, True), capacity=4, now=0, waited=0)
    slower = progress.queued("m", 8, progress.AnswerTime(3.0, False), 4, now=0.5, waited=0.5, previous=told)
    assert (told.estimated_time, slower.estimated_time) == (2, 6)
    assert slower.message.endswith("(answers are taking longer than estimated)")
    # a little slower is not news: the countdown goes on
    same = progress.queued("m", 8, progress.AnswerTime(1.1, False), 4, now=1.0, waited=1.0, previous=told)
    assert same.estimated_time == 1 and "longer" not in same.message


def test_summaries_for_open_webui() -> None:
    assert progress.summary("rtx3090", 12.2, 38.4) == "Warmed up in 12 s on 3090 · 38 tokens/s"
    assert progress.summary("rtx3070", None, 40) == "On 3070 · 40 tokens/s"
    # A real llama.cpp answer of 7 tokens in 22 s (both cores busy): a decimal, not "0 tokens/s".
    assert progress.summary("rtx3070", 4.2, 7 / 22) == "Warmed up in 4 s on 3070 · 0.3 tokens/s"
    assert progress.summary("rtx3070", 4.2, 0.0) == "Warmed up in 4 s on 3070"  # not measured: left out
    assert progress.summary("rtx3070", 4.2, None) == "Warmed up in 4 s on 3070"


def test_pick_takes_the_least_busy_replica_with_a_free_slot() -> None:
    assert routing.pick(["a", "b"], {"a": 2, "b": 1}, 4) == "b"
    assert routing.pick(["a", "b"], {"a": 4, "b": 4}, 4) is None
    assert routing.pick([], {}, 4) is None


def md(
    name: str,
    phase: str,
    *,
    aliases: list[str] | None = None,
    eta: float | None = None,
    endpoints: list[str] | None = None,
) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": name},
            "spec": {"model": name, "aliases": aliases or [], "engine": "sim", "gpu": {"vramGiB": 4}},
            "status": {"phase": phase, "endpoints": endpoints or [], "warmup": {"estimateSeconds": eta}},
        }
    )


def test_auto_prefers_warm_then_default_then_quickest() -> None:
    warm = md("w", "Warm", endpoints=["http://x"])
    assert routing.choose_auto([md("a", "Cold"), warm], {}) is warm
    default = md("d", "Cold", aliases=["default"], eta=30)
    assert routing.choose_auto([md("a", "Cold", eta=5), default], {}) is default
    quick = md("q", "Cold", eta=5)
    assert routing.choose_auto([md("s", "Cold", eta=50), quick, md("f", "Failed")], {}) is quick


async def test_slots_are_granted_in_arrival_order() -> None:
    slots = Slots()
    first, second, third = slots.enqueue("m"), slots.enqueue("m"), slots.enqueue("m")
    assert slots.grant(second, ["e"], 1) is None, "nobody overtakes"
    assert slots.grant(first, ["e"], 1) == "e"
    assert slots.position(second) == 1 and slots.position(third) == 2
    assert slots.grant(second, ["e"], 1) is None, "the only slot is taken"
    fourth = slots.enqueue("m")  # joins at the end: the others keep their places
    assert [slots.position(t) for t in (second, third, fourth)] == [1, 2, 3]
    slots.release(third)  # a waiter that gave up leaves the line; those behind move up
    assert (slots.position(third), slots.position(fourth)) == (0, 2)
    slots.release(fourth)
    assert slots.waiting("m") == 1
    slots.release(first)
    assert slots.grant(second, ["e"], 1) == "e"
    assert slots.in_flight(["e"]) == 1


def test_unknown_model_lists_the_known_ones() -> None:
    err = unknown_model("nope", ["small", "big"])
    assert err.status == 404 and err.body()["error"]["message"] == (
        "The model 'nope' does not exist. Known models: big, small."
    )


def fetched(status: dict[str, Any], uri: str = "https://host.lan/m.gguf") -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "big", "namespace": "default"},
            "spec": {
                "model": "big",
                "engine": "ollama" if uri.startswith("ollama://") else "sim",
                "gpu": {"vramGiB": 14},
                "modelSource": {"uri": uri},
            },
            "status": status,
        }
    )


def test_a_download_is_told_in_bytes_rate_and_time_left() -> None:
    got = {
        "bytes": int(3.2 * 2**30),
        "totalBytes": int(14.9 * 2**30),
        "bytesPerSecond": 48 * 2**20,
        "etaSeconds": 241.2,
    }
    update = progress.downloading(fetched({"phase": "Downloading", "download": got}))
    assert update.message == "Downloading big for the first time: 3.2 GiB of 14.9 GiB at 48.0 MiB/s · ~5 min"
    assert (update.bytes, update.total_bytes, update.estimated_time) == (got["bytes"], got["totalBytes"], 242)
    assert update.progress == round(3.2 / 14.9, 3)
    starting = progress.downloading(fetched({"phase": "Downloading"}))
    assert starting.message == "Downloading big for the first time…" and starting.estimated_time is None


def test_between_the_operators_writes_a_download_counts_on_at_its_rate() -> None:
    got = {"bytes": 100 * 2**20, "totalBytes": 400 * 2**20, "bytesPerSecond": 50 * 2**20, "etaSeconds": 6.0}
    md = fetched({"phase": "Downloading", "download": got})
    told = [progress.downloading(md, since) for since in (0.0, 1.0, 2.0)]
    assert [t.estimated_time for t in told] == [6, 5, 4]
    assert [t.bytes for t in told] == [100 * 2**20, 150 * 2**20, 200 * 2**20]
    assert told[1].message.endswith("150 MiB of 400 MiB at 50.0 MiB/s · ~5 s")
    late = progress.downloading(md, 30.0)  # the figures are old: never past the end, never 0 s
    assert (late.bytes, late.progress, late.estimated_time) == (400 * 2**20, 1.0, 1)


def test_the_first_wake_of_an_uncached_source_is_a_download_from_the_first_event() -> None:
    assert progress.first_download(fetched({"phase": "Cold"}))
    assert progress.first_download(fetched({}))
    cached = {"phase": "Cold", "cache": {"uri": "https://host.lan/m.gguf"}}
    assert not progress.first_download(fetched(cached))  # the weights are in: a load only
    assert progress.first_download(fetched({"phase": "Cold"}, uri="ollama://mistral:7b"))  # the Job pulls
    assert not progress.first_download(fetched({"phase": "Cold"}, uri="s3://bucket/m"))  # the engine's
    assert not progress.first_download(fetched({"phase": "Loading"}))

from __future__ import annotations

import math

from hearth_sim_engine import text
from hearth_sim_engine.engine import EngineSettings


def test_the_same_prompt_gets_the_same_answer_and_others_differ() -> None:
    a = text.reply_tokens("hello", None)
    assert a == text.reply_tokens("hello", None)
    assert a != text.reply_tokens("goodbye", None)
    assert len(a) == text.REPLY_TOKENS
    assert all(t.startswith(" ") for t in a[1:]) and not a[0].startswith(" ")


def test_max_tokens_cuts_the_answer() -> None:
    assert len(text.reply_tokens("x", 3)) == 3
    assert len(text.reply_tokens("x", 1000)) == text.REPLY_TOKENS
    assert len(text.reply_tokens("x", 0)) == 1


def test_prompt_text_reads_string_and_multipart_content() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]},
    ]
    assert text.prompt_text(messages) == "be brief\nhi\n"


def test_embeddings_are_unit_vectors() -> None:
    vec = text.embedding("abc", 64)
    assert len(vec) == 64
    assert math.isclose(sum(v * v for v in vec), 1.0)


def test_load_duration_honours_jitter_and_time_scale() -> None:
    durations = {EngineSettings(load_seconds=10, load_jitter=0.1, seed=s).load_duration() for s in range(50)}
    assert all(9.0 <= d <= 11.0 for d in durations)
    assert len(durations) > 40
    assert EngineSettings(load_seconds=10, time_scale=0.1).load_duration() == 1.0


def test_an_echo_prompt_is_answered_with_its_own_text_token_by_token() -> None:
    tokens = text.reply_tokens("earlier turn\necho: <b>bold</b> and more", None)
    assert tokens == ["<b>bold</b>", " and", " more"]
    assert text.reply_tokens("echo: a b c", 2) == ["a", " b"]

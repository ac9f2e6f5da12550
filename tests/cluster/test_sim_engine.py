"""The simulated engine as a real process, driven by the official OpenAI SDK."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import openai
import pytest

from .conftest import EngineProc, failing_engine

StartEngine = Callable[..., EngineProc]


def _client(engine: EngineProc) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{engine.url}/v1", api_key="unused", max_retries=0)


MESSAGES = [{"role": "user", "content": "Why is the model cold?"}]


def test_health_is_503_while_loading_then_200(start_engine: StartEngine) -> None:
    engine = start_engine("--load-seconds", "1.0")
    assert engine.health() == 503
    body = httpx.get(f"{engine.url}/health").json()
    assert body["status"] == "loading"
    loaded_after = engine.wait_healthy()
    # The load starts inside the process, between its start and its first answer.
    assert loaded_after >= 1.0


def test_requests_during_load_get_an_openai_error(start_engine: StartEngine) -> None:
    engine = start_engine("--load-seconds", "30")
    with pytest.raises(openai.InternalServerError) as info:
        _client(engine).chat.completions.create(model="sim", messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.status_code == 503
    assert "still loading" in str(info.value)


def test_sync_sdk_streaming_and_not(start_engine: StartEngine) -> None:
    engine = start_engine("--load-seconds", "0", "--tokens-per-second", "500", "--model", "small")
    engine.wait_healthy()
    client = _client(engine)
    whole = client.chat.completions.create(model="small", messages=MESSAGES)  # type: ignore[arg-type]
    text = whole.choices[0].message.content
    assert text and len(text.split()) == 32
    assert whole.usage is not None and whole.usage.completion_tokens == 32
    stream = client.chat.completions.create(
        model="small",
        messages=MESSAGES,
        stream=True,  # type: ignore[arg-type]
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    assert "".join(parts) == text, "the same prompt must give the same text"
    assert usage is not None and usage.completion_tokens == 32
    models = client.models.list()
    assert [m.id for m in models.data] == ["small"]


async def test_async_sdk_streaming_and_not(start_engine: StartEngine) -> None:
    engine = start_engine("--load-seconds", "0", "--tokens-per-second", "500")
    engine.wait_healthy()
    client = openai.AsyncOpenAI(base_url=f"{engine.url}/v1", api_key="unused", max_retries=0)
    whole = await client.chat.completions.create(model="sim", messages=MESSAGES, max_tokens=5)  # type: ignore[arg-type]
    assert whole.choices[0].finish_reason == "length"
    stream = await client.chat.completions.create(
        model="sim",
        messages=MESSAGES,
        max_tokens=5,  # type: ignore[arg-type]
        stream=True,
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == whole.choices[0].message.content
    async with client.chat.completions.stream(model="sim", messages=MESSAGES) as s:  # type: ignore[arg-type]
        final = await s.get_final_completion()
    assert final.choices[0].finish_reason == "stop"
    assert (final.choices[0].message.content or "").startswith(text)
    completion = await client.completions.create(model="sim", prompt="hello", max_tokens=4)
    assert len(completion.choices[0].text.split()) == 4
    emb = await client.embeddings.create(model="sim", input=["a", "b", "a"])
    assert emb.data[0].embedding == emb.data[2].embedding != emb.data[1].embedding
    await client.close()


def test_tokens_are_paced_at_the_set_rate(start_engine: StartEngine) -> None:
    engine = start_engine("--load-seconds", "0", "--tokens-per-second", "20")
    engine.wait_healthy()
    began = time.monotonic()
    stream = _client(engine).chat.completions.create(
        model="sim",
        messages=MESSAGES,
        max_tokens=21,
        stream=True,  # type: ignore[arg-type]
    )
    arrivals = [time.monotonic() for c in stream if c.choices and c.choices[0].delta.content]
    assert len(arrivals) == 21
    # 20 gaps of 1/20 s lie between the first token and the last: the last cannot come sooner
    # (the measured rate, against a baseline, is `make bench`'s).
    paced = arrivals[-1] - began
    assert paced >= 20 / 20 * 0.95, f"21 tokens at 20/s all arrived within {paced:.2f} s"


def test_time_scale_shrinks_load_and_token_delays(start_engine: StartEngine) -> None:
    engine = start_engine("--load-seconds", "10", "--tokens-per-second", "2", "--time-scale", "0.05")
    # Unscaled, the load takes 10 s and the answer 4.5 s; scaled, 0.5 s and 0.23 s. Each deadline
    # is ten times the scaled figure and still short of the unscaled one.
    assert engine.wait_healthy(deadline=5.0) >= 0.5
    client = openai.OpenAI(base_url=f"{engine.url}/v1", api_key="x", max_retries=0, timeout=2.3)
    client.chat.completions.create(model="sim", messages=MESSAGES, max_tokens=10)  # type: ignore[arg-type]


def test_crash_mode_ends_the_stream_early(start_engine: StartEngine) -> None:
    engine = failing_engine(start_engine, "crash-after-tokens", 3)
    received: list[str] = []
    with pytest.raises((openai.APIError, httpx.TransportError)):
        stream = _client(engine).chat.completions.create(
            model="sim",
            messages=MESSAGES,
            max_tokens=20,
            stream=True,  # type: ignore[arg-type]
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert len(received) == 3
    assert engine.proc.wait(5) == 1


def test_fail_load_exits_during_load(start_engine: StartEngine) -> None:
    engine = start_engine("--load-seconds", "0.6", "--failure", "fail-load")
    assert engine.health() == 503
    assert engine.proc.wait(5) == 3


def test_never_ready_stays_unhealthy(start_engine: StartEngine) -> None:
    engine = start_engine("--load-seconds", "0.1", "--failure", "never-ready")
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:
        assert engine.health() == 503
        time.sleep(0.1)
    assert engine.proc.poll() is None


def test_settings_come_from_the_environment_too(
    start_engine: StartEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEARTH_SIM_MODEL", "from-env")
    monkeypatch.setenv("HEARTH_SIM_LOAD_SECONDS", "0")
    engine = start_engine()
    engine.wait_healthy()
    assert [m.id for m in _client(engine).models.list().data] == ["from-env"]

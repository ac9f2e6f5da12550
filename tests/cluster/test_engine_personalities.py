"""The simulated engines held to the real ones' behaviour while they load and when they refuse:
llama.cpp's 503 "Loading model", vLLM's closed port until it is up and its own command line,
Ollama's pull-then-load-on-demand and its keep-alive. Real processes, real sockets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from ..conftest import stop_process
from .conftest import EngineProc, free_port

StartEngine = Callable[..., EngineProc]
CHAT = [{"role": "user", "content": "hello"}]


def until(check: Callable[[], Any], what: str, deadline: float = 15.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `deadline` s."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def status_or_refused(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.ConnectError:
        return None


# --- llama.cpp ----------------------------------------------------------------------------------


def test_llamacpp_answers_503_loading_model_everywhere_until_loaded(start_engine: StartEngine) -> None:
    engine = start_engine("--personality", "llamacpp", "--load-seconds", "30", "--model", "smol")
    loading = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    health = httpx.get(f"{engine.url}/health")
    chat = httpx.post(f"{engine.url}/v1/chat/completions", json={"model": "x", "messages": CHAT})
    models = httpx.get(f"{engine.url}/v1/models")
    assert [r.status_code for r in (health, chat, models)] == [503, 503, 503]
    assert health.json() == chat.json() == models.json() == loading


def test_llamacpp_health_is_ok_once_loaded_and_any_model_name_is_served(start_engine: StartEngine) -> None:
    engine = start_engine("--personality", "llamacpp", "--load-seconds", "0", "--model", "smol")
    engine.wait_healthy()
    assert httpx.get(f"{engine.url}/health").json() == {"status": "ok"}
    client = openai.OpenAI(base_url=f"{engine.url}/v1", api_key="unused", max_retries=0)
    answer = client.chat.completions.create(model="whatever", messages=CHAT)  # type: ignore[arg-type]
    assert answer.choices[0].message.content


# --- vLLM ---------------------------------------------------------------------------------------


def spawn_vllm(*args: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    settings = {"HEARTH_SIM_HOST": "127.0.0.1", "HEARTH_SIM_TIME_SCALE": "1", **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hearth_sim.vllm", *args, "--port", str(port)],
        env={**os.environ, **settings},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def vllm() -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
        proc, url = spawn_vllm(*args, **env)
        procs.append(proc)
        return proc, url

    yield start
    for proc in procs:
        stop_process(proc, grace=5)


def test_vllm_refuses_connections_while_loading_then_serves_its_names(
    vllm: Callable[..., tuple[subprocess.Popen[bytes], str]],
) -> None:
    proc, url = vllm(
        "--model",
        "Qwen/Qwen2.5-7B-Instruct",
        "--served-model-name",
        "qwen",
        "chat",
        HEARTH_SIM_LOAD_SECONDS="1.5",
    )
    seen: list[int | None] = []
    until(lambda: seen.append(status_or_refused(f"{url}/health")) or seen[-1] == 200, "vLLM's port to open")
    assert proc.poll() is None and seen[0] is None, "refused while it loads"
    assert set(seen) == {None, 200}, "vLLM answers nothing at all before it is up"
    health = httpx.get(f"{url}/health")
    assert health.status_code == 200 and health.content == b""
    assert [m["id"] for m in httpx.get(f"{url}/v1/models").json()["data"]] == ["qwen", "chat"]
    wrong = httpx.post(
        f"{url}/v1/chat/completions", json={"model": "Qwen/Qwen2.5-7B-Instruct", "messages": CHAT}
    )
    assert wrong.status_code == 404
    assert wrong.json() == {
        "object": "error",
        "message": "The model `Qwen/Qwen2.5-7B-Instruct` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    assert client.chat.completions.create(model="chat", messages=CHAT).choices[0].message.content  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--model", "m", "--gpu-memory-utilization", "1.5"], "must be in (0, 1]"),
        (["--model", "m", "--max-num-seqs", "0"], "must be at least 1"),
        (["--model", "m", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--port", "8000"], "a model is required"),
    ],
)
def test_vllm_rejects_what_the_real_command_line_rejects(args: list[str], complaint: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hearth_sim.vllm", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and complaint in done.stderr


def test_vllm_that_fails_to_load_exits_without_ever_listening(
    vllm: Callable[..., tuple[subprocess.Popen[bytes], str]],
) -> None:
    proc, url = vllm("--model", "m", HEARTH_SIM_LOAD_SECONDS="0.4", HEARTH_SIM_FAILURE="fail-load")
    assert proc.wait(timeout=30) == 3
    assert status_or_refused(f"{url}/health") is None


# --- Ollama -------------------------------------------------------------------------------------


class Ollama:
    def __init__(self, keep_alive: str) -> None:
        port = free_port()
        self.env = {
            **os.environ,
            "OLLAMA_HOST": f"127.0.0.1:{port}",
            "OLLAMA_KEEP_ALIVE": keep_alive,
            "HEARTH_SIM_TIME_SCALE": "0.05",
            "HEARTH_SIM_LOAD_SECONDS": "4",
        }
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hearth_sim.ollama", "serve"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        until(lambda: status_or_refused(self.url), "Ollama to listen")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hearth_sim.ollama", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def loaded(self) -> list[str]:
        return [m["name"] for m in httpx.get(f"{self.url}/api/ps").json()["models"]]

    def chat(self, model: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/chat/completions", json={"model": model, "messages": CHAT}, timeout=30
        )


@pytest.fixture
def ollama() -> Iterator[Callable[[str], Ollama]]:
    started: list[Ollama] = []

    def start(keep_alive: str) -> Ollama:
        started.append(Ollama(keep_alive))
        return started[-1]

    yield start
    for server in started:
        stop_process(server.proc, grace=5)


def test_ollama_serves_at_once_knows_only_pulled_models_and_loads_on_first_request(
    ollama: Callable[[str], Ollama],
) -> None:
    server = ollama("5m")
    root = httpx.get(server.url)
    assert (root.status_code, root.text) == (200, "Ollama is running")
    unknown = server.chat("tiny")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["message"] == 'model "tiny" not found, try pulling it first'
    missing = server.cli("pull", "missing-model:1b")
    assert missing.returncode == 1 and "file does not exist" in missing.stderr
    pulled = server.cli("pull", "tiny:1b")
    assert pulled.returncode == 0 and pulled.stdout.splitlines()[-1] == "success"
    assert server.cli("cp", "tiny:1b", "tiny").returncode == 0
    assert server.loaded() == [], "a pull does not load"
    answer = server.chat("tiny")
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]
    assert server.loaded() == ["tiny:latest"]


def test_ollama_unloads_after_its_keep_alive_and_loads_again_on_the_next_request(
    ollama: Callable[[str], Ollama],
) -> None:
    server = ollama("40s")  # 2 s at this time scale: long enough to see it loaded first
    assert server.cli("pull", "tiny").returncode == 0
    assert server.cli("run", "tiny", "hi").returncode == 0
    assert server.loaded() == ["tiny:latest"]
    until(lambda: server.loaded() == [], "Ollama to unload the idle model")
    assert server.chat("tiny").status_code == 200
    assert server.loaded() == ["tiny:latest"]


def test_ollama_with_keep_alive_minus_one_keeps_the_model(ollama: Callable[[str], Ollama]) -> None:
    server = ollama("-1")  # as Hearth renders it
    assert server.cli("pull", "tiny").returncode == 0 and server.cli("run", "tiny", "hi").returncode == 0
    ps = httpx.get(f"{server.url}/api/ps").json()["models"]
    assert [(m["name"], m["expires_at"]) for m in ps] == [("tiny:latest", "0001-01-01T00:00:00Z")]

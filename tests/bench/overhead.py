"""What a proxy in front of the engine costs: the same streams sent straight to a warm sim
engine, through Hearth's router and through LiteLLM's proxy, interleaved round by round in one
run, at several concurrencies. Added time is each path's percentile minus the direct one's."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from ..cluster.conftest import EngineProc, free_port, spawn_engine
from ..conftest import stop_process
from .harness import ROOT, Stack, Table, Timed, client, pct, proc_status, timed_stream, until, warm_model

LITELLM = ROOT / ".hearth" / "litellm-venv" / "bin" / "litellm"
TOKENS = 16  # per answer, as in the measurement


@contextmanager
def litellm_proxy(engine: EngineProc, workdir: Path) -> Iterator[tuple[str, str] | None]:
    """LiteLLM's proxy for the same engine (its own venv, made by `make bench`), or None."""
    if not LITELLM.exists():
        yield None
        return
    key = "sk-bench-" + secrets.token_hex(24)
    config = {
        "model_list": [
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": "openai/sim",
                    "api_base": f"{engine.url}/v1",
                    "api_key": "unused",
                },
            }
        ],
        "litellm_settings": {"telemetry": False, "drop_params": True},
        "general_settings": {"master_key": key},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    env = {**os.environ, "LITELLM_MASTER_KEY": key, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"}
    log = (workdir / "litellm.log").open("wb")
    proc = subprocess.Popen(
        [
            str(LITELLM),
            "--config",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            yield None
            return
        yield url, key
    finally:
        stop_process(proc, grace=10)


async def _round(
    url: str, body: dict[str, Any], headers: dict[str, str], n: int, concurrency: int
) -> tuple[list[Timed], float]:
    async with client(concurrency) as session:
        session.headers.update(headers)
        await timed_stream(session, url, body, keep_events=False)  # a warm connection pool
        sem = asyncio.Semaphore(concurrency)

        async def one() -> Timed:
            async with sem:
                return await timed_stream(session, url, body, keep_events=False)

        began = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(n)))
        return list(results), time.perf_counter() - began


Paths = dict[str, tuple[str, dict[str, Any], dict[str, str]]]  # name → (url, body, headers)


@dataclass
class Rounds:
    results: dict[str, list[Timed]]  # each path's streams
    walls: dict[str, float]  # seconds each path's rounds took
    cpu: dict[str, float]  # CPU seconds each path's server used in them (0: not measured)


async def interleaved(
    paths: Paths,
    cpu_of: Callable[[str], float],
    rounds: int,
    per_round: int,
    concurrency: int,
    rng: random.Random,
) -> Rounds:
    """`rounds` rounds of `per_round` streams at `concurrency` to every path, the paths in a new
    random order each round (so no path always runs on a warmer or a busier machine);
    `cpu_of(path)`: the CPU seconds its server has used so far (0 where not measured)."""
    done = Rounds({p: [] for p in paths}, dict.fromkeys(paths, 0.0), dict.fromkeys(paths, 0.0))
    for _ in range(rounds):
        order = list(paths)
        rng.shuffle(order)
        for name in order:
            url, body, headers = paths[name]
            before = cpu_of(name)
            got, wall = await _round(url, body, headers, per_round, concurrency)
            done.cpu[name] += cpu_of(name) - before
            done.results[name] += got
            done.walls[name] += wall
    return done


async def run(st: Stack, smoke: bool = False) -> list[Table]:
    engine = spawn_engine("--load-seconds", "0", "--tokens-per-second", "4000")
    try:
        engine.wait_healthy()
        kube = st.kube()
        await warm_model(kube, "bench", engine.url, concurrency=1024)
        await kube.close()

        async def warm() -> bool:
            async with httpx.AsyncClient() as http:
                models = (await http.get(f"{st.router.url}/v1/models")).json()["data"]
            return any(m["id"] == "bench" and m["phase"] == "Warm" for m in models)

        await asyncio.wait_for(until(warm), 20)
        body = {
            "model": "bench",
            "stream": True,
            "max_tokens": TOKENS,
            "messages": [{"role": "user", "content": "hi"}],
        }
        with litellm_proxy(engine, st.workdir) as lite:
            paths: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
                "direct": (f"{engine.url}/v1/chat/completions", {**body, "model": "sim"}, {}),
                "hearth": (f"{st.router.url}/v1/chat/completions", body, {}),
            }
            if lite is not None:
                paths["litellm"] = (
                    f"{lite[0]}/v1/chat/completions",
                    body,
                    {"Authorization": f"Bearer {lite[1]}"},
                )
            return [await _measure(st, paths, smoke, litellm_found=lite is not None)]
    finally:
        stop_process(engine.proc, grace=5)


async def _measure(st: Stack, paths: Paths, smoke: bool, litellm_found: bool) -> Table:
    table = Table(
        f"Router overhead: {TOKENS}-token streams from a sim engine at 4000 tokens/s, interleaved rounds",
        [
            "concurrency",
            "path",
            "streams",
            "TTFT p50 ms",
            "added p50",
            "added p99",
            "total p50 ms",
            "added p50 ",
            "added p99 ",
            "tokens/s",
            "x direct",
            "router CPU ms/req",
        ],
    )
    plans = [(1, 4, 10), (50, 2, 100)] if smoke else [(1, 5, 100), (50, 3, 200), (200, 2, 400)]
    rng = random.Random(7)
    router_pid = st.router.proc.pid if st.router.proc else 0

    def router_cpu(name: str) -> float:
        return proc_status(router_pid)["cpu_s"] if name == "hearth" else 0.0

    for concurrency, rounds, per_round in plans:
        done = await interleaved(paths, router_cpu, rounds, per_round, concurrency, rng)
        results, walls = done.results, done.walls
        direct = results["direct"]
        d_ttft = [(t.first_token or t.ended or 0) - t.began for t in direct]
        d_total = [(t.ended or 0) - t.began for t in direct]
        d_rate = sum(t.tokens for t in direct) / walls["direct"]
        for name, got in results.items():
            ttft = [1000 * ((t.first_token or t.ended or 0) - t.began) for t in got]
            total = [1000 * ((t.ended or 0) - t.began) for t in got]
            rate = sum(t.tokens for t in got) / walls[name]
            complete = sum(1 for t in got if t.tokens == TOKENS)
            cpu = 1000 * done.cpu[name] / len(got) if name == "hearth" else float("nan")
            table.add(
                concurrency,
                name,
                f"{complete}/{len(got)}",
                pct(ttft, 50),
                pct(ttft, 50) - 1000 * pct(d_ttft, 50),
                pct(ttft, 99) - 1000 * pct(d_ttft, 99),
                pct(total, 50),
                pct(total, 50) - 1000 * pct(d_total, 50),
                pct(total, 99) - 1000 * pct(d_total, 99),
                rate,
                rate / d_rate,
                cpu,
            )
    if not litellm_found:
        table.notes.append(
            "LiteLLM's proxy is not installed (`make bench` installs it into .hearth/litellm-venv)"
        )
    table.notes.append(
        "added = this path's percentile minus the direct path's, in ms; x direct = throughput ratio"
    )
    return table

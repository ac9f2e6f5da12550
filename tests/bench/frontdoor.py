"""Front doors: the same router app behind uvicorn + httptools (what `hearth-router` runs) and
behind granian (a Rust HTTP server for ASGI), in one run, on one homelab: the cold-start herd
(a kernel-timed burst of streams written back to back at a cold model of each door's own), and
the overhead rounds against a warm engine (added TTFT at c=1, throughput against direct at c=50
and c=200). N processes sharing the store is the `replicas` benchmark, in the same run.

granian comes from PyPI into the project's venv (`make bench` installs it); without it the
table says so and has only uvicorn's column."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path
from typing import Any

import httpx

from ..cluster.operator_helpers import MD_API, sim_md, wait_phase
from ..cluster.router_helpers import RouterProcess
from ..conftest import descendants
from .harness import Stack, Table, kernel_timed_burst, pct, proc_status, until
from .herd import _chat, _first_event, cold_model
from .overhead import TOKENS, Paths, interleaved

GRANIAN = Path(sys.executable).parent / "granian"
SETTINGS = {"max_waiters": 2000}


class GranianRouter(RouterProcess):
    """The router's app (tests/bench/granian_app.py) served by granian: one worker, one runtime
    thread and uvloop — like `hearth-router`, one process on one event loop. Started, settings
    and all, as RouterProcess starts `hearth-router`; the bench runs from the repository's root,
    where granian imports the app from."""

    def command(self) -> list[str]:
        args = ["--interface", "asgi", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        args += ["--runtime-threads", "1", "--loop", "uvloop", "--backlog", "4096", "--log-level", "warning"]
        return [str(GRANIAN), *args, "tests.bench.granian_app:app"]


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (granian's worker is a child of its own)."""
    total = 0.0
    for each in [pid, *descendants(pid)]:
        try:
            total += proc_status(each)["cpu_s"]
        except OSError:
            pass
    return total


async def run(st: Stack, smoke: bool = False) -> list[Table]:
    assert st.router.proc is not None
    doors: dict[str, tuple[str, int]] = {"uvicorn + httptools": (st.router.url, st.router.proc.pid)}
    granian = None
    if GRANIAN.exists():
        granian = GranianRouter(st.lab, st.workdir, log_level="WARNING", **SETTINGS).start()
    try:
        if granian is not None and granian.proc is not None:
            doors["granian"] = (granian.url, granian.proc.pid)
        figures = {
            door: await _herd(st, f"door-{i}", url, pid, smoke)
            for i, (door, (url, pid)) in enumerate(doors.items())
        }
        overhead = await _overhead(st, doors, smoke)
    finally:
        if granian is not None:
            granian.stop()
    names = list(doors)
    columns = ["figure", *names] + ([f"{names[1]} / {names[0]}"] if len(names) == 2 else [])
    n = 40 if smoke else 1000
    table = Table(
        f"Front doors: one router process, {n} streams at once to a cold model, then overhead rounds", columns
    )
    for measured in (figures, overhead):
        for row in measured[names[0]]:
            values = [measured[d][row] for d in names]
            ratio = [values[1] / values[0] if values[0] else float("nan")] if len(names) == 2 else []
            table.add(row, *values, *ratio)
    if granian is None:
        table.notes.append("granian is not installed in the venv (`make bench` installs it)")
    table.notes.append("CPU per request: the server's process (and its children), this run's requests only")
    return [table]


async def _herd(st: Stack, name: str, url: str, pid: int, smoke: bool) -> dict[str, float]:
    n = 40 if smoke else 1000
    kube = st.kube()
    await cold_model(kube, name, url)
    before = tree_cpu(pid)
    streams = await kernel_timed_burst(url, "/v1/chat/completions", _chat(name), n)
    used = tree_cpu(pid) - before
    await kube.delete(MD_API, "modeldeployments", "default", name)  # its GPU, for the next door's
    await kube.close()
    after_sent = _first_event(streams)
    return {
        "herd: replies complete": sum(1 for s in streams if s.done and s.tokens > 0),
        "herd: first event after the request was sent, p50 ms": pct(after_sent, 50),
        "herd: first event after the request was sent, p99 ms": pct(after_sent, 99),
        "herd: CPU per request, ms": 1000 * used / n,
    }


async def _overhead(st: Stack, doors: dict[str, tuple[str, int]], smoke: bool) -> dict[str, dict[str, float]]:
    """Interleaved rounds, as the overhead benchmark's, straight to a warm engine and through
    each door: added TTFT at c=1, throughput against direct, CPU per request."""
    out: dict[str, dict[str, float]] = {door: {} for door in doors}
    # The operator's own engine pod (this benchmark's models are the operator's), woken once.
    kube = st.kube()
    md = sim_md("door-bench", load=0.1, vram=4, time_scale=1.0, tokens_per_second=4000, concurrency=1024)
    await kube.create(MD_API, "modeldeployments", "default", md)
    await wait_phase(kube, "door-bench", "Cold")
    first_url = next(iter(doors.values()))[0]
    async with httpx.AsyncClient(timeout=60) as http:
        for url, _ in doors.values():

            async def listed(url: str = url) -> bool:
                models = (await http.get(f"{url}/v1/models")).json()["data"]
                return any(m["id"] == "door-bench" for m in models)

            await asyncio.wait_for(until(listed), 20)
        woken = await http.post(
            f"{first_url}/v1/chat/completions", json={**_chat("door-bench"), "stream": False}
        )
        assert woken.status_code == 200, woken.text
    engine = (await wait_phase(kube, "door-bench", "Warm"))["endpoints"][0]
    await kube.close()
    body: dict[str, Any] = {
        "model": "door-bench",
        "stream": True,
        "max_tokens": TOKENS,
        "messages": [{"role": "user", "content": "hi"}],
    }
    paths: Paths = {"direct": (f"{engine}/v1/chat/completions", body, {})}
    paths |= {door: (f"{url}/v1/chat/completions", body, {}) for door, (url, _) in doors.items()}
    pids = {door: pid for door, (_, pid) in doors.items()}

    def cpu_of(path: str) -> float:
        return tree_cpu(pids[path]) if path in pids else 0.0

    plans = [(1, 2, 10), (50, 1, 100)] if smoke else [(1, 5, 100), (50, 3, 200), (200, 2, 400)]
    rng = random.Random(11)
    for concurrency, rounds, per_round in plans:
        done = await interleaved(paths, cpu_of, rounds, per_round, concurrency, rng)
        results, walls, cpu = done.results, done.walls, done.cpu
        d_rate = sum(t.tokens for t in results["direct"]) / walls["direct"]
        d_ttft = pct([(t.first_token or t.ended or 0) - t.began for t in results["direct"]], 50)
        for door in doors:
            got = results[door]
            rate = sum(t.tokens for t in got) / walls[door]
            if concurrency == 1:
                ttft = pct([(t.first_token or t.ended or 0) - t.began for t in got], 50)
                out[door]["added TTFT p50 at c=1, ms"] = 1000 * (ttft - d_ttft)
            out[door][f"throughput x direct at c={concurrency}"] = rate / d_rate
            out[door][f"CPU per request at c={concurrency}, ms"] = 1000 * cpu[door] / len(got)
    return out

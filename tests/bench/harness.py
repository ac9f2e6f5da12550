"""What every benchmark needs: the homelab with the real operator and router, a sim engine, a
streaming client that times each event, distributions, and process figures from /proc.

Benchmarks measure; they never assert timings. Each returns a `Table` (printed by `make bench`,
saved as JSON under `.hearth/bench/`); the smoke tests in `make test` run them tiny, only so
the scripts keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube
from hearth_sim.nodes import NodeSpec

from ..cluster.conftest import start_homelab
from ..cluster.operator_helpers import MD_API, OperatorProcess
from ..cluster.router_helpers import RouterProcess

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / ".hearth" / "bench"


# --- figures -----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0 to 100), nearest-rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def proc_status(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (MiB), and CPU seconds used so far."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    fields["cpu_s"] = (int(stat[11]) + int(stat[12])) / ticks
    return fields


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    key: str = ""  # which benchmark made it (pages.keyed): where the docs show it

    def add(self, *row: Any) -> None:
        self.rows.append(list(row))

    def render(self) -> str:
        def cell(v: Any) -> str:
            if isinstance(v, float):
                return "-" if math.isnan(v) else f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
            return str(v)

        cells = [self.columns, *[[cell(v) for v in r] for r in self.rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = [f"## {self.title}", ""]
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |")
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        lines += [
            "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells[1:]
        ]
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "columns": self.columns,
            "rows": self.rows,
            "notes": self.notes,
        }


def save(tables: list[Table], meta: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    body = json.dumps({"meta": meta, "tables": [t.as_json() for t in tables]}, indent=2, default=str)
    path = RESULTS / f"bench-{stamp}.json"
    path.write_text(body)
    (RESULTS / "latest.json").write_text(body)
    return path


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {"cpu": cpu, "cores": os.cpu_count(), "load_avg": os.getloadavg()}


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class Stack:
    lab: HomelabThread
    router: RouterProcess
    operator: OperatorProcess | None
    workdir: Path

    @property
    def api_url(self) -> str:
        return self.lab.homelab.url

    def kube(self) -> Kube:
        return Kube(self.api_url)


@contextlib.contextmanager
def stack(
    workdir: Path,
    operator: bool = True,
    nodes: list[NodeSpec] | None = None,
    router: dict[str, Any] | None = None,
) -> Iterator[Stack]:
    """Homelab (API server, kubelet, GPU nodes), the real operator (optional) and router."""
    workdir.mkdir(parents=True, exist_ok=True)
    lab = start_homelab(workdir / "homelab", nodes)
    op = None
    try:
        if operator:
            op = OperatorProcess(lab, workdir)
            op.start()
        r = RouterProcess(lab, workdir, log_level="WARNING", **(router or {})).start()
        try:
            yield Stack(lab, r, op, workdir)
        finally:
            r.stop()
    finally:
        if op is not None:
            op.stop()
        lab.stop()


async def until(check: Callable[[], Awaitable[bool]], interval: float = 0.05) -> None:
    """Poll `check` until it holds (the caller bounds the wait)."""
    while True:
        if await check():
            return
        await asyncio.sleep(interval)


async def warm_model(kube: Kube, name: str, endpoint: str, concurrency: int = 256) -> None:
    """A ModelDeployment that is Warm at `endpoint` by fiat (no operator): the router's view."""
    md = {
        "apiVersion": MD_API,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": name, "engine": "sim", "gpu": {"vramGiB": 4}, "concurrency": concurrency},
    }
    await kube.create(MD_API, "modeldeployments", "default", md)
    status = {"phase": "Warm", "endpoints": [endpoint], "gpuClass": "rtx3090"}
    await kube.patch(MD_API, "modeldeployments", "default", name, {"status": status}, sub="status")


# --- a client that times each event ------------------------------------------------------------


@dataclass
class Timed:
    began: float
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (arrival, chunk)
    sent: float | None = None  # the request's last byte handed to the socket (the client's own wait excluded)
    first_byte: float | None = None
    first_token: float | None = None
    ended: float | None = None
    tokens: int = 0
    status: int = 0

    def of(self, status: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in self.events if e.get("status") == status]

    @property
    def done(self) -> bool:
        return bool(self.of("done"))

    def take(self, at: float, data: bytes, keep_events: bool = True) -> None:
        """One SSE `data:` payload that arrived at `at`: a status event kept (if asked), a chunk
        with text counted as a token."""
        if b'"status"' in data:
            if keep_events:
                self.events.append((at, json.loads(data)))
        elif b'"content":"' in data and b'"content":""' not in data:
            self.tokens += 1
            self.first_token = self.first_token or at


async def timed_stream(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], keep_events: bool = True
) -> Timed:
    """POST a streamed request and time its first byte, first token, every status event, end."""
    out = Timed(time.perf_counter())
    async with session.post(url, json=body, trace_request_ctx=out) as response:
        out.status = response.status
        buffer = b""
        async for piece in response.content.iter_any():
            now = time.perf_counter()
            out.first_byte = out.first_byte or now
            buffer += piece
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"data: {"):
                    out.take(now, line[6:], keep_events)
    out.ended = time.perf_counter()
    return out


async def kernel_timed_burst(
    url: str, path: str, body: dict[str, Any] | None, n: int, spread: float = 0.0, read_for: float = 600
) -> list[Timed]:
    """`n` requests on raw sockets from a process of their own, each answer's bytes timed by the
    kernel as they arrived (`burst.py`): times free of any client's event-loop lag. All times are
    the wall clock's (`time.time()`), so only differences between them mean anything. Answers
    still open after `read_for` seconds are cut (the client goes away)."""
    address = urlsplit(url)
    spec = {
        "host": address.hostname,
        "port": address.port,
        "method": "POST" if body is not None else "GET",
        "path": path,
        "body": body,
        "n": n,
        "spread": spread,
        "read_for": read_for,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench.burst",
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate(json.dumps(spec).encode())
    timed = []
    for record in json.loads(out):
        t = Timed(record["sent"], sent=record["sent"], first_byte=record["first"], status=record["status"])
        t.ended = record["ended"]
        for at, line in record["lines"]:
            t.take(at, line.encode())
        timed.append(t)
    return timed


async def _sent(_: aiohttp.ClientSession, context: SimpleNamespace, __: object) -> None:
    """When a request's headers or body went out: `Timed.sent` ends up at the last of them."""
    timed = context.trace_request_ctx
    if isinstance(timed, Timed):
        timed.sent = time.perf_counter()


@contextlib.asynccontextmanager
async def client(limit: int) -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=limit + 10, force_close=False)
    tracing = aiohttp.TraceConfig()
    tracing.on_request_headers_sent.append(_sent)
    tracing.on_request_chunk_sent.append(_sent)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=600), trace_configs=[tracing]
    ) as s:
        yield s

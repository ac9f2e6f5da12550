"""The cold-start herd: a burst of streamed requests at one cold model, through the real operator
and router. What each waiting user was told, and how fast the queue drained once warm."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from hearth_sim.kube import Kube

from ..cluster.operator_helpers import MD_API, WAKE, sim_md, wait_phase
from ..cluster.router_helpers import eta_rose_unexplained
from .harness import Stack, Table, Timed, kernel_timed_burst, median, pct, proc_status, until

SLOTS = 16  # concurrency of the one replica
TOKENS_PER_SECOND = 40.0  # sim engine: 32 tokens take 0.8 s
LOAD_SECONDS = 3.0
PACED = (1.0, 0.5, 0.25)  # seconds over which the paced herds arrive


def _queued_error(s: Timed) -> float | None:
    """|first queued ETA - the wait that followed| / that wait, for a stream that queued."""
    queued = s.of("queued")
    generating = s.of("generating")
    if not queued or not generating:
        return None
    at, first = queued[0]
    actual = generating[0][0] - at
    return abs(first["estimated_time"] - actual) / actual if actual > 0.5 else None


async def _healthz_latency(url: str, stop: asyncio.Event) -> list[float]:
    """The router's event-loop lag, as a client sees it: /healthz round trips every 100 ms."""
    out: list[float] = []
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            began = time.perf_counter()
            async with session.get(f"{url}/healthz") as response:
                await response.read()
            out.append(1000 * (time.perf_counter() - began))
            await asyncio.sleep(0.1)
    return out


async def cold_model(kube: Kube, name: str, *router_urls: str) -> None:
    """The herd's cold model (LOAD_SECONDS to load, SLOTS at once), once every router lists it."""
    md = sim_md(
        name,
        load=LOAD_SECONDS,
        vram=4,
        time_scale=1.0,
        tokens_per_second=TOKENS_PER_SECOND,
        concurrency=SLOTS,
    )
    await kube.create(MD_API, "modeldeployments", "default", md)
    await wait_phase(kube, name, "Cold")
    for url in router_urls:

        async def listed(url: str = url) -> bool:
            return any(m["model"] == name for m in await _models(url))

        await until(listed)


def wakes_sent(api: Any, name: str, since: int) -> int:
    """The wakes the routers sent for `name` after the API server's `since`-th request."""
    return sum(1 for r in api.requests[since:] if r.method == "PATCH" and r.name == name and WAKE in r.text)


def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": "hello"}]}


async def run(st: Stack, smoke: bool = False) -> list[Table]:
    n = 40 if smoke else 1000
    kube = st.kube()
    await cold_model(kube, "herd", st.router.url)
    api = st.lab.homelab.api
    assert api is not None
    before = len(api.requests)
    # The floor under "first event": the same burst of connections to a route that does nothing.
    floor = await kernel_timed_burst(st.router.url, "/healthz", None, n, read_for=60)
    stop = asyncio.Event()
    lag = asyncio.create_task(_healthz_latency(st.router.url, stop))
    streams = await kernel_timed_burst(st.router.url, "/v1/chat/completions", _chat("herd"), n)
    stop.set()
    lags = await lag
    router = proc_status(st.router.proc.pid if st.router.proc else 0)
    table = _table(n, streams, wakes_sent(api, "herd", before), lags, router)
    floor_p99 = pct(_first_event(floor), 99)
    table.add(f"baseline: {n} GET /healthz at once, answer after sent, p99 ms", floor_p99, "")
    # The same herd arriving as people arrive, not as one program writes: spread over each of
    # PACED, each at a cold model of its own; only the first events are kept.
    for spread in PACED:
        name = f"herd-{round(1000 * spread)}ms"
        await cold_model(kube, name, st.router.url)
        paced = await kernel_timed_burst(
            st.router.url, "/v1/chat/completions", _chat(name), n, spread=spread, read_for=spread + 0.5
        )
        p99 = pct(_first_event(paced), 99)
        table.add(f"first event after the request was sent, p99 ms, the {n} over {spread:g} s", p99, "≤ 50")
    await kube.close()
    return [table]


def _first_event(streams: list[Timed]) -> list[float]:
    """ms from each request's write to the kernel's receipt of its answer's first bytes."""
    return [1000 * ((s.first_byte or s.ended or s.sent or s.began) - (s.sent or s.began)) for s in streams]


async def _models(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/api/models") as response:
        return list((await response.json())["models"])


def _table(n: int, streams: list[Timed], wakes: int, lags: list[float], router: dict[str, float]) -> Table:
    complete = [s for s in streams if s.done and s.tokens > 0]
    after_sent = _first_event(streams)
    errors = [e for e in (_queued_error(s) for s in streams) if e is not None]
    rises = sum(1 for s in streams if eta_rose_unexplained([e for _, e in s.of("queued")]))
    rates = []
    for s in streams:
        waiting = [t for t, e in s.events if e.get("status") in ("loading", "queued")]
        if len(waiting) > 2:
            rates.append((len(waiting) - 1) / (waiting[-1] - waiting[0]))
    generating = sorted(t for s in streams for t, _ in s.of("generating")[:1])
    ends = sorted(s.ended or 0 for s in complete)
    answer = median([(s.ended or 0) - t for s in complete for t, _ in s.of("generating")[:1]])
    drain = (len(ends) - 1) / (ends[-1] - generating[0]) if len(ends) > 1 and generating else float("nan")
    capacity = SLOTS / answer if answer else float("nan")
    table = Table(
        f"Cold-start herd: {n} streamed requests at once to one cold model "
        f"(load {LOAD_SECONDS:g} s, {SLOTS} slots, answers of ~{32 / TOKENS_PER_SECOND:g} s)",
        ["figure", "value", "target"],
    )
    table.add("wakes sent", wakes, "1")
    table.add("replies complete", f"{len(complete)}/{n}", f"{n}/{n}")
    table.add("first event after the request was sent, p50 ms", pct(after_sent, 50), "")
    table.add("first event after the request was sent, p99 ms", pct(after_sent, 99), "≤ 50")
    table.add("first event after the request was sent, max ms", pct(after_sent, 100), "")
    table.add("loading events sent", sum(len(s.of("loading")) for s in streams), "")
    table.add("queued ETA error at first sight, median", median(errors), "")
    table.add("queued ETA error at first sight, p90", pct(errors, 90), "")
    table.add("streams whose ETA rose unexplained", rises, "0")
    table.add("status events per waiting stream per s, p50", median(rates), "≤ 1.2")
    table.add("status events per waiting stream per s, max", pct(rates, 100), "")
    table.add("drain rate req/s", drain, "")
    table.add("capacity req/s (slots / median answer)", capacity, "")
    table.add("drain / capacity", drain / capacity, "≥ 0.95")
    table.add("router peak RSS MiB", router["VmHWM"], "< 200")
    table.add("/healthz round trip p99 ms (loop lag)", pct(lags, 99), "< 50")
    return table

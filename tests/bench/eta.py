"""How right the first countdown is: loads of one model whose load time is drawn from a
fixed-seed log-normal, each woken by a streamed request; the first `estimated_time` the client
saw against the wait that followed — for Hearth's learned estimate, the seed plan's static size
table (5/15/30 s) and "the median of the last 3 loads"."""

from __future__ import annotations

import math
import random
from typing import Any

import aiohttp

from ..cluster.operator_helpers import MD_API, sim_md, wait_phase
from .harness import Stack, Table, client, median, pct, timed_stream

SEED = 11
SIGMA = 0.3
VRAM = 10  # a "medium" model: the static table says 15 s


def static_table(vram_gib: int) -> float:
    """The seed plan's estimate by size: small 5 s, medium 15 s, big 30 s."""
    return 5.0 if vram_gib <= 6 else 15.0 if vram_gib <= 16 else 30.0


def draws(n: int, mean: float) -> list[float]:
    rng = random.Random(SEED)
    return [mean * math.exp(rng.gauss(0, SIGMA) - SIGMA**2 / 2) for _ in range(n)]


async def _until_router_sees(url: str, phase: str) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{url}/api/models") as response:
                models = (await response.json())["models"]
            if any(m["model"] == "eta" and m["status"].get("phase") == phase for m in models):
                return


async def run(st: Stack, smoke: bool = False) -> list[Table]:
    loads = draws(2 if smoke else 20, 1.5 if smoke else 8.0)
    kube = st.kube()
    md: dict[str, Any] = sim_md("eta", load=loads[0], vram=VRAM, time_scale=1.0, tokens_per_second=200)
    await kube.create(MD_API, "modeldeployments", "default", md)
    errors: dict[str, list[float]] = {"hearth (learned)": [], "static size table": [], "median of last 3": []}
    actuals: list[float] = []
    body = {"model": "eta", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with client(4) as session:
        for load in loads:
            env = [e for e in md["spec"]["env"] if e["name"] != "HEARTH_SIM_LOAD_SECONDS"]
            env.append({"name": "HEARTH_SIM_LOAD_SECONDS", "value": f"{load:.2f}"})
            await kube.patch(MD_API, "modeldeployments", "default", "eta", {"spec": {"env": env}})
            await wait_phase(kube, "eta", "Cold", deadline=60)
            await _until_router_sees(st.router.url, "Cold")
            s = await timed_stream(session, f"{st.router.url}/v1/chat/completions", body)
            loading, generating = s.of("loading"), s.of("generating")
            if not loading or not generating:
                continue
            at, first = loading[0]
            actual = generating[0][0] - at
            guesses = {
                "hearth (learned)": float(first["estimated_time"]),
                "static size table": static_table(VRAM),
                "median of last 3": median(actuals[-3:]) if actuals else static_table(VRAM),
            }
            for name, guess in guesses.items():
                errors[name].append(abs(guess - actual) / actual)
            actuals.append(actual)
            async with session.post(f"{st.router.url}/api/models/eta/sleep") as response:
                await response.read()
            await wait_phase(kube, "eta", "Cold", deadline=60)
    await kube.close()
    table = Table(
        f"ETA accuracy: {len(actuals)} loads drawn log-normal (sigma {SIGMA}) around "
        f"{median(loads):.1f} s (seed {SEED}); error = |first estimated_time - true wait| / true wait",
        ["estimate", "median abs error", "p90 abs error", "loads"],
    )
    for name, errs in errors.items():
        table.add(name, median(errs), pct(errs, 90), len(errs))
    table.notes.append("target: Hearth's median error ≤ 0.15 and below both baselines")
    table.notes.append("estimated_time is whole seconds: ±0.5 s of the error is rounding")
    return [table]

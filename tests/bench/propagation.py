"""How fast the truth travels: engine Ready (its /health turns 200) → the CR's status says Warm
(seen by a watch) → the waiting client's `generating` event, over repeated loads."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from hearth_sim.kube import Kube

from ..cluster.operator_helpers import MD_API, sim_md, wait_phase
from .harness import Stack, Table, client, pct, timed_stream


async def _pod_ip(kube: Kube) -> str:
    while True:
        pods = (await kube.list("v1", "pods", "default", label_selector="hearth.dev/model=prop"))["items"]
        ips = [
            (p.get("status") or {}).get("podIP") for p in pods if not p["metadata"].get("deletionTimestamp")
        ]
        if ips and ips[0]:
            return str(ips[0])
        await asyncio.sleep(0.005)


async def _engine_ready(kube: Kube) -> float:
    ip = await _pod_ip(kube)
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"http://{ip}:8000/health") as response:
                    if response.status == 200:
                        return time.perf_counter()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.002)


async def _warm_seen(kube: Kube) -> float:
    async for _, obj in kube.watch(MD_API, "modeldeployments"):
        if obj["metadata"]["name"] == "prop" and (obj.get("status") or {}).get("phase") == "Warm":
            return time.perf_counter()
    raise AssertionError("the watch ended")


async def run(st: Stack, smoke: bool = False) -> list[Table]:
    n = 3 if smoke else 50
    kube = st.kube()
    md: dict[str, Any] = sim_md("prop", load=0.5, vram=4, time_scale=1.0, tokens_per_second=500)
    await kube.create(MD_API, "modeldeployments", "default", md)
    to_cr, to_client, total = [], [], []
    body = {"model": "prop", "stream": True, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}
    async with client(4) as session:
        for _ in range(n):
            await wait_phase(kube, "prop", "Cold", deadline=60)
            watcher = Kube(st.api_url)
            warm = asyncio.create_task(_warm_seen(watcher))
            await asyncio.sleep(0.05)  # the watch is listening
            ready = asyncio.create_task(_engine_ready(kube))
            s = await timed_stream(session, f"{st.router.url}/v1/chat/completions", body)
            generating = s.of("generating")
            t_ready, t_warm = await ready, await asyncio.wait_for(warm, 30)
            await watcher.close()
            if generating:
                to_cr.append(1000 * (t_warm - t_ready))
                to_client.append(1000 * (generating[0][0] - t_warm))
                total.append(1000 * (generating[0][0] - t_ready))
            async with session.post(f"{st.router.url}/api/models/prop/sleep") as response:
                await response.read()
    await kube.close()
    table = Table(f"Status propagation over {len(total)} loads (ms)", ["hop", "p50", "p95", "max"])
    table.add("engine Ready → CR status Warm (watch)", pct(to_cr, 50), pct(to_cr, 95), pct(to_cr, 100))
    table.add(
        "CR Warm → client's generating event", pct(to_client, 50), pct(to_client, 95), pct(to_client, 100)
    )
    table.add("engine Ready → generating event", pct(total, 50), pct(total, 95), pct(total, 100))
    table.notes.append(
        "target: engine Ready → generating ≤ 100 ms p95; Ready: the engine's /health first answers 200 "
        "to a 2 ms poll"
    )
    return [table]

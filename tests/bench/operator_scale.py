"""The operator with many models: N ModelDeployments applied at once — how long until every
one has a phase, the operator's memory, and its CPU while nothing changes afterwards."""

from __future__ import annotations

import asyncio
import time

from ..cluster.operator_helpers import MD_API, delete_all_models, sim_md
from .harness import Stack, Table, proc_status, until

IDLE_SECONDS = 5.0


async def _settle(pid: int, limit: float = 120.0) -> float:
    """When the operator's work after the last phase is done (status conditions, Events):
    two quiet seconds in a row (under 3 % of a core each)."""
    quiet = 0
    end = time.perf_counter() + limit
    while quiet < 2 and time.perf_counter() < end:
        before = proc_status(pid)["cpu_s"]
        await asyncio.sleep(1.0)
        quiet = quiet + 1 if proc_status(pid)["cpu_s"] - before < 0.03 else 0
    return time.perf_counter() - 2.0


async def run(st: Stack, smoke: bool = False) -> list[Table]:
    assert st.operator is not None and st.operator.proc is not None
    pid = st.operator.proc.pid
    kube = st.kube()
    table = Table(
        "Operator scale: ModelDeployments applied at once",
        [
            "models",
            "until all have a phase s",
            "until the operator is quiet s",
            "operator peak RSS MiB",
            "CPU s until all have a phase",
            "idle CPU % of a core",
        ],
    )
    for count in (20,) if smoke else (200, 1000):
        sem = asyncio.Semaphore(32)
        cpu_before = proc_status(pid)["cpu_s"]
        began = time.perf_counter()

        async def create(name: str, sem: asyncio.Semaphore = sem) -> None:
            async with sem:
                await kube.create(MD_API, "modeldeployments", "default", sim_md(name, vram=1))

        await asyncio.gather(*(create(f"scale-{count}-{i}") for i in range(count)))
        while True:
            items = (await kube.list(MD_API, "modeldeployments", "default"))["items"]
            if len(items) >= count and all((o.get("status") or {}).get("phase") for o in items):
                break
            await asyncio.sleep(0.1)
        took = time.perf_counter() - began
        busy = proc_status(pid)["cpu_s"] - cpu_before
        settled = await _settle(pid) - began
        idle_from = proc_status(pid)["cpu_s"]
        await asyncio.sleep(IDLE_SECONDS)
        idle = 100 * (proc_status(pid)["cpu_s"] - idle_from) / IDLE_SECONDS
        table.add(count, took, settled, proc_status(pid)["VmHWM"], busy, idle)
        await delete_all_models(kube)

        async def gone() -> bool:
            return not (await kube.list(MD_API, "modeldeployments", "default"))["items"]

        await until(gone, 0.2)
    await kube.close()
    table.notes.append("targets: 200 ≤ 10 s, 1 000 ≤ 60 s; idle CPU ≈ 0")
    return [table]

"""Running the real operator process against the homelab, and watching what it writes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from hearth_sim.homelab import CACHE_CLAIM, HomelabThread
from hearth_sim.kube import ApiError, Kube

from ..conftest import stop_process
from .conftest import eventually, free_port

MD_API = "hearth.dev/v1alpha1"
WAKE = "hearth.dev/wake-requested-at"


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def downloading_operator(homelab: HomelabThread, log_dir: Path, **settings: Any) -> OperatorProcess:
    """The operator with the chart's weights cache, downloading from (and reading headers off)
    the homelab's hub: a started OperatorProcess, for a module fixture to stop."""
    op = OperatorProcess(
        homelab, log_dir, cache_claim=CACHE_CLAIM, hf_endpoint=homelab.homelab.hub_url, **settings
    )
    op.start()
    return op


class OperatorProcess:
    """`hearth-operator run` as a child process, restartable."""

    def __init__(self, homelab: HomelabThread, log_dir: Path, **settings: Any) -> None:
        self.homelab = homelab
        self.log_dir = log_dir
        self.settings = settings  # HEARTH_OPERATOR_<NAME> variables
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.metrics_port = free_port()

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"operator-{self.starts}.log").open("wb")
        env = {
            **os.environ,
            "KUBECONFIG": str(self.homelab.homelab.kubeconfig_path),
            "HEARTH_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "HEARTH_OPERATOR_METRICS_HOST": "127.0.0.1",
            "HEARTH_LOG_LEVEL": "INFO",
            **{f"HEARTH_OPERATOR_{name.upper()}": str(value) for name, value in self.settings.items()},
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hearth_operator.cli", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    async def reconciling(self) -> None:
        """Until this start of the operator has reconciled a model (its metrics say so)."""

        async def counted() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    text = (await http.get(f"http://127.0.0.1:{self.metrics_port}/metrics")).text
            except httpx.TransportError:
                return False  # not listening yet
            return any(
                line.startswith("hearth_reconciles_total ") and float(line.split()[1]) >= 1
                for line in text.splitlines()
            )

        await eventually(counted, deadline=30, what="the operator to reconcile")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=15)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("operator-*.log")))


def sim_md(
    name: str,
    *,
    load: float = 1.0,
    vram: int = 6,
    gpu_class: str = "any",
    idle: int = 300,
    time_scale: float | None = None,
    jitter: float = 0.0,
    tokens_per_second: float | None = None,
    **spec: Any,
) -> dict[str, Any]:
    env = [
        {"name": "HEARTH_SIM_LOAD_SECONDS", "value": str(load)},
        {"name": "HEARTH_SIM_LOAD_JITTER", "value": str(jitter)},
    ]
    if time_scale is not None:
        env.append({"name": "HEARTH_SIM_TIME_SCALE", "value": str(time_scale)})
    if tokens_per_second is not None:
        env.append({"name": "HEARTH_SIM_TOKENS_PER_SECOND", "value": str(tokens_per_second)})
    return {
        "apiVersion": MD_API,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": name,
            "engine": "sim",
            "env": env,
            "gpu": {"class": gpu_class, "vramGiB": vram},
            "scaling": {"minReplicas": 0, "idleTimeoutSeconds": idle},
            **spec,
        },
    }


async def children_gone(kube: Kube, name: str) -> bool:
    """Whether a ModelDeployment's Deployment, Service and pods are all gone."""
    for api, plural in (("apps/v1", "deployments"), ("v1", "services")):
        try:
            await kube.get(api, plural, "default", name)
            return False
        except ApiError:
            pass
    pods = await kube.list("v1", "pods", "default", f"hearth.dev/model-deployment={name}")
    return not pods["items"]


async def delete_all_models(kube: Kube) -> None:
    for md in (await kube.list(MD_API, "modeldeployments", "default"))["items"]:
        await kube.delete(MD_API, "modeldeployments", "default", md["metadata"]["name"])


async def status(kube: Kube, name: str) -> dict[str, Any]:
    return dict((await kube.get(MD_API, "modeldeployments", "default", name)).get("status") or {})


async def wait_phase(kube: Kube, name: str, phase: str, deadline: float = 20) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        s = await status(kube, name)
        return s if s.get("phase") == phase else None

    return await eventually(check, deadline, what=f"{name} to be {phase}")


async def wake(kube: Kube, name: str) -> float:
    await kube.patch(
        MD_API, "modeldeployments", "default", name, {"metadata": {"annotations": {WAKE: now_stamp()}}}
    )
    return time.monotonic()


@dataclass
class Recorder:
    """Every phase each ModelDeployment passed through, in order, as one watch saw them."""

    phases: dict[str, list[str]] = field(default_factory=dict)

    def seen(self, name: str) -> list[str]:
        return list(self.phases.get(name, []))

    async def until(self, name: str, phase: str) -> list[str]:
        """Until this recorder's own watch has seen `name` reach `phase` (a GET may see it
        first): the phases it went through."""

        async def reached() -> list[str] | None:
            seen = self.seen(name)
            return seen if seen and seen[-1] == phase else None

        return await eventually(reached, deadline=10, what=f"the recorder to see {name} {phase}")


@contextlib.asynccontextmanager
async def recording(kube: Kube) -> AsyncIterator[Recorder]:
    rec = Recorder()

    async def models() -> None:
        async for _, obj in kube.watch(MD_API, "modeldeployments"):
            phase = (obj.get("status") or {}).get("phase")
            seen = rec.phases.setdefault(obj["metadata"]["name"], [])
            if phase and (not seen or seen[-1] != phase):
                seen.append(phase)

    tasks = [asyncio.create_task(models())]
    try:
        yield rec
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):  # a watch that failed still fails
                await t

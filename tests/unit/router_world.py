"""The router's services around a registry the test fills and an engine the test scripts: no
cluster, no sockets. What the engine answers is a list of steps per call: a list of chunks to
stream, a dict to answer whole, or an EngineUnreachable to raise before any byte."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

from hearth_router import services
from hearth_router.errors import EngineUnreachable
from hearth_router.registry import Registry
from hearth_router.settings import RouterSettings
from hearth_router.upstream import Upstream

Step = list[dict[str, Any]] | dict[str, Any] | EngineUnreachable


@dataclass
class ScriptedEngine:
    steps: list[Step] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # the endpoint of each call, in order

    def _next(self, endpoint: str) -> Step:
        self.calls.append(endpoint)
        step = self.steps.pop(0)
        if isinstance(step, EngineUnreachable):
            raise step
        return step

    async def stream(self, endpoint: str, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        step = self._next(endpoint)
        assert isinstance(step, list), step
        for chunk in step:
            yield chunk

    async def fetch(self, endpoint: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        step = self._next(endpoint)
        assert isinstance(step, dict), step
        return dict(step)

    async def close(self) -> None:
        return None


def model(name: str = "m", phase: str = "Warm", endpoints: int = 1, concurrency: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "model": name,
            "engine": "sim",
            "gpu": {"class": "rtx3090", "vramGiB": 4},
            "concurrency": concurrency,
            "warmup": {"expectedSeconds": 15},
        },
        "status": {
            "phase": phase,
            "gpuClass": "rtx3090",
            "node": "gpu-3090",
            "endpoints": [f"http://127.10.0.{i + 1}:8000" for i in range(endpoints)]
            if phase == "Warm"
            else [],
        },
    }


def build(engine: ScriptedEngine | None = None, **settings: Any) -> services.Services:
    registry = Registry(None)
    registry.ready.set()
    values = {"loading_interval": 0.05, "unreachable_retry_seconds": 0.05, **settings}
    return services.build(
        RouterSettings.model_validate(values), None, registry, cast(Upstream, engine or ScriptedEngine())
    )


def unreachable(endpoint: str) -> EngineUnreachable:
    return EngineUnreachable(endpoint, f"{endpoint} refused the connection")

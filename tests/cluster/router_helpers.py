"""The router as a real process, and an SSE reader that keeps every event."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hearth_sim.homelab import HomelabThread

from ..conftest import stop_process
from .conftest import eventually, free_port
from .operator_helpers import MD_API, sim_md, wait_phase


class RouterProcess:
    def __init__(
        self, homelab: HomelabThread, log_dir: Path, log_level: str = "INFO", **settings: Any
    ) -> None:
        self.homelab, self.log_dir, self.settings, self.log_level = homelab, log_dir, settings, log_level
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """What runs: `hearth-router` on this process's port (the bench runs the app otherwise)."""
        return [sys.executable, "-m", "hearth_router.cli", "--host", "127.0.0.1", "--port", str(self.port)]

    def start(self) -> RouterProcess:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.homelab.homelab.kubeconfig_path),
            "HEARTH_LOG_LEVEL": self.log_level,
        }
        for name, value in self.settings.items():
            env[f"HEARTH_ROUTER_{name.upper()}"] = str(value)
        log = (self.log_dir / f"router-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(self.command(), env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.logs()
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"the router did not become ready:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.log_dir.glob(f"router-{self.port}.log"))


def eta_rose_unexplained(queued: list[dict[str, Any]]) -> bool:
    """Whether, over a stream's `queued` events, a shown ETA went up without the message saying
    why (it may rise only with "taking longer" / "answers are taking longer")."""
    return any(
        b["estimated_time"] > a["estimated_time"] and "longer" not in b.get("message", "")
        for a, b in itertools.pairwise(queued)
    )


@contextlib.contextmanager
def replica_pair(
    homelab: HomelabThread, log_dir: Path, **settings: Any
) -> Iterator[tuple[RouterProcess, RouterProcess]]:
    """Two router processes with the same settings (a `store_url` to share a line), stopped after."""
    routers = [RouterProcess(homelab, log_dir, **settings).start() for _ in range(2)]
    try:
        yield routers[0], routers[1]
    finally:
        for router in routers:
            router.stop()


@dataclass
class Event:
    at: float  # monotonic arrival time
    data: dict[str, Any] | str  # a chunk, or "[DONE]"


@dataclass
class Stream:
    status: int
    headers: dict[str, str]
    events: list[Event] = field(default_factory=list)
    comments: int = 0
    body: dict[str, Any] | None = None  # for a non-stream (error) answer

    @property
    def statuses(self) -> list[str]:
        return [e.data["status"] for e in self.events if isinstance(e.data, dict) and "status" in e.data]

    def of(self, status: str) -> list[Event]:
        return [e for e in self.events if isinstance(e.data, dict) and e.data.get("status") == status]

    @property
    def text(self) -> str:
        out = []
        for e in self.events:
            if isinstance(e.data, dict) and "status" not in e.data:
                for c in e.data.get("choices") or []:
                    out.append((c.get("delta") or {}).get("content") or c.get("text") or "")
        return "".join(out)


async def sse(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    stop_after: int | None = None,
) -> Stream:
    """POST and read the whole SSE answer (or its first `stop_after` events, then hang up)."""
    async with client.stream("POST", url, json=body, headers=headers or {}) as response:
        result = Stream(response.status_code, dict(response.headers))
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            result.body = json.loads(await response.aread())
            return result
        async for line in response.aiter_lines():
            if line.startswith(":"):
                result.comments += 1
            elif line.startswith("data: "):
                raw = line[6:]
                result.events.append(
                    Event(time.monotonic(), "[DONE]" if raw == "[DONE]" else json.loads(raw))
                )
                if stop_after is not None and len(result.events) >= stop_after:
                    break
        return result


CHAT = "/v1/chat/completions"


def chat(model: str, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "why is it cold?"}],
        **extra,
    }


async def cold_model(kube: Any, router: RouterProcess, name: str, *more: RouterProcess, **kw: Any) -> None:
    """A Cold sim model (`sim_md`'s options) that the router (and `more` routers) already list."""
    await kube.create(MD_API, "modeldeployments", "default", sim_md(name, **kw))
    await wait_phase(kube, name, "Cold")
    for each in (router, *more):
        await listed(each, name)


async def listed(router: RouterProcess, name: str) -> None:
    async def known() -> bool:
        async with httpx.AsyncClient() as http:
            models = (await http.get(f"{router.url}/v1/models")).json()["data"]
        return any(m["id"] == name and m["phase"] == "Cold" for m in models)

    await eventually(known, what=f"the router to know {name}")

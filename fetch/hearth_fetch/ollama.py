"""An `ollama://` source into the cache through an Ollama server's own pull API.

The fetch Job runs the model's Ollama image beside `hearth-fetch` (a sidecar whose store,
`OLLAMA_MODELS`, is the cache's `ollama/` folder); `hearth-fetch` asks it to pull
(`POST /api/pull`) and follows the NDJSON progress it streams — one line per layer's progress,
`{"status": "pulling 6a0746a1ec1a", "digest": "sha256:…", "total": N, "completed": M}`, then
`{"status": "success"}` or `{"error": "…"}`. Ollama itself resumes a layer a killed pull left
partial and checks every layer's digest; this module turns its progress into the meter's
numbers and its errors into the fetch's reasons. Speaking Ollama's registry protocol here
instead would duplicate what Ollama does and break with its next format change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from hearth_fetch.failures import FetchFailed, Why
from hearth_fetch.meter import Meter

log = logging.getLogger("hearth.fetch.ollama")
SERVER_WAIT = 120.0  # seconds the sidecar may take to listen (its image is pulled first)
QUIET = 900.0  # seconds without a progress line before the pull counts as stuck (a digest check
# of a 40 GB layer is silent for minutes)

# Ollama's error texts → why the fetch failed (first match wins; the rest is the network's).
_WHY = (
    (("file does not exist", "manifest unknown", "not found"), Why.NOT_FOUND),
    (("digest mismatch",), Why.CHECKSUM),
    (("no space left", "file too large", "disk quota"), Why.DISK_FULL),
    (("unauthorized", "forbidden", "401", "403"), Why.UNAUTHORIZED),
    (("read-only file system", "permission denied"), Why.CACHE_UNWRITABLE),
    (("invalid model name", "invalid reference"), Why.BAD_SOURCE),
)


def why(error: str) -> Why:
    """The fetch's reason for an error Ollama's pull reported."""
    text = error.lower()
    for needles, reason in _WHY:
        if any(n in text for n in needles):
            return reason
    return Why.UNREACHABLE


@dataclass
class Layers:
    """A pull's layers as its progress lines report them, summed into the meter. Pure.

    A layer's first line may already count bytes — a layer resumed from a killed pull, or one
    another model shares — which are done but not speed; the total grows as layers appear."""

    meter: Meter
    seen: dict[str, int] = field(default_factory=dict)  # digest → bytes completed

    def update(self, line: dict[str, Any], now: float) -> None:
        digest, total, completed = line.get("digest"), line.get("total"), line.get("completed") or 0
        if not isinstance(digest, str) or not isinstance(total, int) or not isinstance(completed, int):
            return
        before = self.seen.get(digest)
        if before is None:
            self.meter.total = (self.meter.total or 0) + total
            self.meter.skip(completed)
            self.meter.mark(now)
        elif completed != before:
            self.meter.add(now, completed - before)
        self.seen[digest] = completed


async def wait_for_server(client: httpx.AsyncClient, server: str, within: float = SERVER_WAIT) -> None:
    """The sidecar starts beside this container: wait until it answers."""
    deadline = time.monotonic() + within
    while True:
        try:
            (await client.get(f"{server}/api/version", timeout=5.0)).raise_for_status()
            return
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                raise FetchFailed(
                    Why.UNREACHABLE, f"the Ollama server at {server} did not answer in {within:g}s: {exc!r}"
                ) from exc
        await asyncio.sleep(0.5)


def _error_of(body: bytes) -> str:
    try:
        said = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip()
    return str(said.get("error", said)) if isinstance(said, dict) else str(said)


async def pull(
    client: httpx.AsyncClient, server: str, name: str, meter: Meter, room: Callable[[], None]
) -> None:
    """Have the Ollama server at `server` pull `name`; `room()` is asked each time the total
    grows (it raises when the cache cannot hold what is left)."""
    await wait_for_server(client, server)
    layers = Layers(meter)
    timeout = httpx.Timeout(30.0, read=QUIET)
    log.info("pulling %s through %s", name, server)
    async with client.stream("POST", f"{server}/api/pull", json={"model": name}, timeout=timeout) as answer:
        if answer.status_code >= 400:
            error = _error_of(await answer.aread())
            raise FetchFailed(why(error), f"ollama pull {name}: {error}")
        async for raw in answer.aiter_lines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(line, dict):
                continue
            if "error" in line:
                error = str(line["error"])
                raise FetchFailed(why(error), f"ollama pull {name}: {error}")
            total = meter.total
            layers.update(line, time.monotonic())
            if meter.total != total:
                room()
            if line.get("status") == "success":
                return
    raise FetchFailed(Why.UNREACHABLE, f"ollama pull {name}: the server ended the pull without success")

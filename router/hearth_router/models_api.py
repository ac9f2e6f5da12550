"""The models API: OpenAI's `/v1/models` (plus phase, GPU, ETA) and the dashboard's
`/api/models`, `/api/gpus` and their SSE feed of changes."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hearth_api import estimates
from hearth_api.activity import idle_deadline
from hearth_api.model_deployment import ModelDeployment, Phase, prior_warmup_seconds
from hearth_api.times import rfc3339
from hearth_router import progress
from hearth_router.admission import Admissions
from hearth_router.chunks import KEEPALIVE_FRAME
from hearth_router.gpu_map import gpu_map
from hearth_router.inflight import InFlight
from hearth_router.nodes import Nodes
from hearth_router.registry import Entry, Registry

FEED_TICK = 1.0  # countdowns and queue lengths in the feed move at most this often


def _created(entry: Entry) -> int:
    stamp = entry.md.metadata.get("creationTimestamp")
    try:
        return int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _eta(entry: Entry) -> int:
    """Seconds until the model can answer: 0 when Warm; the download left (once measured)
    and the load, while its weights download."""
    md = entry.md
    if md.status.phase is Phase.WARM:
        return 0
    load = progress.loading(md, datetime.now(UTC)).estimated_time
    if md.status.phase is Phase.DOWNLOADING:
        return load + (progress.downloading(md).estimated_time or 0)
    return load


def openai_models(registry: Registry) -> dict[str, Any]:
    data = []
    for entry in sorted(registry.entries.values(), key=lambda e: e.md.spec.model):
        md = entry.md
        for name in md.spec.names:
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "created": _created(entry),
                    "owned_by": "hearth",
                    "phase": md.status.phase.value if md.status.phase else None,
                    "gpu": md.status.gpu_class or md.spec.gpu.gpu_class.value,
                    "estimated_time": _eta(entry),
                }
            )
    return {"object": "list", "data": data}


def warmup_history(md: ModelDeployment) -> list[dict[str, float]]:
    """Each measured warm-up beside what the learned estimate said before it: the board's chart
    of estimate vs actual."""
    samples = md.status.warmup.samples
    prior = prior_warmup_seconds(md.spec)
    return [{"actual": s, "estimate": estimates.estimate(samples[:i], prior)} for i, s in enumerate(samples)]


def _frame(payload: str) -> bytes:
    return b"data: " + payload.encode() + b"\n\n"


@dataclass
class Board:
    """The dashboard's board: each model with what this replica's line holds for it, the GPU
    map, and the feed of both."""

    registry: Registry
    admissions: Admissions
    inflight: InFlight
    nodes: Nodes

    def model_view(self, entry: Entry) -> dict[str, Any]:
        md = entry.md
        sleeps_at = idle_deadline(md) if md.status.phase is Phase.WARM else None
        return {
            "key": entry.key,
            "name": md.name,
            "namespace": md.namespace,
            "model": md.spec.model,
            "aliases": md.spec.aliases,
            "engine": md.spec.engine.value,
            "gpu": md.spec.gpu.model_dump(by_alias=True, mode="json"),
            # What placement reserves: gpu.vramGiB, or the estimate from the weights where larger.
            "reserved_gib": round(md.vram_gib, 2),
            "min_replicas": md.spec.scaling.min_replicas,
            "status": md.status.model_dump(by_alias=True, mode="json"),
            "estimated_time": _eta(entry),
            "warmup_history": warmup_history(md),
            "sleeps_at": rfc3339(sleeps_at) if sleeps_at else None,
            "router": {
                "waiters": self.admissions.waiters.count(entry.key),
                "queued": self.admissions.line.waiting(entry.key),
                "in_flight": self.admissions.line.in_flight(md.status.endpoints),
            },
        }

    def model_views(self) -> list[dict[str, Any]]:
        return [self.model_view(e) for e in sorted(self.registry.entries.values(), key=lambda e: e.key)]

    def gpus(self) -> dict[str, Any]:
        models = [e.md for e in self.registry.entries.values()]
        return {"gpus": gpu_map(list(self.nodes.by_name.values()), models), "error": self.nodes.denied}

    async def events(self, keepalive_interval: float) -> AsyncIterator[bytes]:
        """The GPU map and every model once, then whatever changed — a model (its whole view), a
        removed model (`{"deleted": key}`), the GPU map (`{"gpus": [...]}`) — at most once a
        `FEED_TICK` per model; a keep-alive comment after a quiet `keepalive_interval`."""
        sent: dict[str, str] = {}
        sent_gpus = ""
        last_write = time.monotonic()
        while not self.inflight.draining:  # a stopping router ends its feeds: browsers reconnect elsewhere
            frames = []
            board = json.dumps(self.gpus())
            if board != sent_gpus:
                frames.append(_frame(board))
                sent_gpus = board
            views = {v["key"]: json.dumps(v) for v in self.model_views()}
            for key in sent.keys() - views.keys():
                frames.append(_frame(json.dumps({"deleted": key})))
                del sent[key]
            for key, view in views.items():
                if sent.get(key) != view:
                    frames.append(_frame(view))
                    sent[key] = view
            now = time.monotonic()
            if frames:
                yield b"".join(frames)
                last_write = now
            elif now - last_write >= keepalive_interval:
                yield KEEPALIVE_FRAME
                last_write = now
            await self.registry.wait_change(FEED_TICK)

"""The models API: OpenAI's `/v1/models` (plus phase, GPU, ETA) and the dashboard's
`/api/models` and its SSE feed of changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from hearth_router import progress
from hearth_router.chunks import KEEPALIVE_FRAME
from hearth_router.dispatcher import Dispatcher
from hearth_router.registry import Entry


def _created(entry: Entry) -> int:
    stamp = entry.md.metadata.get("creationTimestamp")
    try:
        return int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _eta(dispatcher: Dispatcher, entry: Entry) -> int:
    md = entry.md
    if md.status.phase is not None and md.status.phase.value == "Warm":
        return 0
    return progress.loading(md, datetime.now(UTC)).estimated_time


def openai_models(dispatcher: Dispatcher) -> dict[str, Any]:
    data = []
    for entry in sorted(dispatcher.registry.entries.values(), key=lambda e: e.md.spec.model):
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
                    "estimated_time": _eta(dispatcher, entry),
                }
            )
    return {"object": "list", "data": data}


def model_view(dispatcher: Dispatcher, entry: Entry) -> dict[str, Any]:
    md = entry.md
    endpoints = md.status.endpoints
    return {
        "key": entry.key,
        "name": md.name,
        "namespace": md.namespace,
        "model": md.spec.model,
        "aliases": md.spec.aliases,
        "engine": md.spec.engine.value,
        "gpu": md.spec.gpu.model_dump(by_alias=True, mode="json"),
        "status": md.status.model_dump(by_alias=True, mode="json"),
        "estimated_time": _eta(dispatcher, entry),
        "router": {
            "waiters": dispatcher.waiters.count(entry.key),
            "queued": dispatcher.slots.waiting(entry.key),
            "in_flight": dispatcher.slots.in_flight(endpoints),
        },
    }


def model_views(dispatcher: Dispatcher) -> list[dict[str, Any]]:
    return [
        model_view(dispatcher, e) for e in sorted(dispatcher.registry.entries.values(), key=lambda e: e.key)
    ]


async def model_events(dispatcher: Dispatcher) -> AsyncIterator[bytes]:
    """Every model once, then each change as it happens (a removed model: `{"deleted": key}`)."""
    queue: asyncio.Queue[Entry | str] = asyncio.Queue()
    dispatcher.registry.listeners.add(queue)
    try:
        for view in model_views(dispatcher):
            yield b"data: " + json.dumps(view).encode() + b"\n\n"
        while True:
            try:
                change = await asyncio.wait_for(queue.get(), dispatcher.settings.keepalive_interval)
            except TimeoutError:
                yield KEEPALIVE_FRAME
                continue
            if isinstance(change, str):
                payload: dict[str, Any] = {"deleted": change}
            else:
                payload = model_view(dispatcher, change)
            yield b"data: " + json.dumps(payload).encode() + b"\n\n"
    finally:
        dispatcher.registry.listeners.discard(queue)

"""Streams the drills read as they come: a drill looks at where each one is (loading, queued,
generating) while it injects its fault, then at how each one ended."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Followed:
    statuses: list[str] = field(default_factory=list)  # each status event's, in order
    last: str = ""  # the last data line: "[DONE]" when the stream ended as it should
    http_status: int = 0
    ended: bool = False
    cut: bool = False  # the connection ended without the stream's end (a transport error)
    places: list[int] = field(default_factory=list)  # each `queued` event's place in line

    @property
    def whole(self) -> bool:
        """Ended with its reply: `done`, then [DONE]."""
        return self.http_status == 200 and self.statuses[-1:] == ["done"] and self.last == "[DONE]"

    @property
    def now(self) -> str:
        return self.statuses[-1] if self.statuses and not self.ended else ""

    @property
    def told_error(self) -> bool:
        """Ended with an OpenAI-shaped error event, then [DONE] (or an error answer before any)."""
        return self.http_status == 200 and self.last == "[DONE]" and self.statuses[-1:] == ["error"]


async def follow(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    into: Followed,
    headers: dict[str, str] | None = None,
) -> None:
    try:
        async with http.stream("POST", url, json=body, headers=headers or {}) as response:
            into.http_status = response.status_code
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                into.last = line[6:]
                if into.last == "[DONE]":
                    continue
                data = json.loads(into.last)
                if "error" in data:
                    into.statuses.append("error")
                elif status := data.get("status"):
                    into.statuses.append(status)
                    if status == "queued":
                        into.places.append(int(data["queue_position"]))
    except httpx.TransportError:
        into.cut = True
    finally:
        into.ended = True

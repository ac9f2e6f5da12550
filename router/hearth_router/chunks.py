"""The wire format of the stream (docs/stream.md), as pure functions: status events are ordinary
`chat.completion.chunk`s (or `text_completion` chunks) with an empty delta and extra top-level
keys, so every stock OpenAI client parses them and reads the text unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

DONE_FRAME = b"data: [DONE]\n\n"
KEEPALIVE_FRAME = b": keep-alive\n\n"


def frame(obj: dict[str, Any]) -> bytes:
    # orjson: every chunk of every stream is encoded here (and each engine chunk decoded in
    # parse_sse_line); `make bench` showed the json module at a sixth of the router's CPU.
    return b"data: " + orjson.dumps(obj) + b"\n\n"


@dataclass(frozen=True)
class StreamIdentity:
    """What every chunk of one response shares."""

    id: str
    created: int
    model: str  # as the client asked for it
    chat: bool = True

    @property
    def object(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"

    def empty_choice(self, finish_reason: str | None = None) -> dict[str, Any]:
        if self.chat:
            return {"index": 0, "delta": {}, "finish_reason": finish_reason}
        return {"index": 0, "text": "", "finish_reason": finish_reason}

    def base(self, finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "choices": [self.empty_choice(finish_reason)],
        }


def status_chunk(
    ident: StreamIdentity,
    status: str,
    message: str,
    *,
    timestamp: float,
    description: str | None = None,
    done: bool = False,
    hidden: bool = False,
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A status event; `description` is what Open WebUI shows (defaults to `message`)."""
    data: dict[str, Any] = {"description": description if description is not None else message, "done": done}
    if hidden:
        data["hidden"] = True
    chunk = ident.base(finish_reason)
    chunk.update(status=status, message=message, timestamp=timestamp, event={"type": "status", "data": data})
    chunk.update({k: v for k, v in extra.items() if v is not None})
    return chunk


def error_chunk(
    ident: StreamIdentity,
    message: str,
    *,
    timestamp: float,
    type_: str = "server_error",
    code: str | None = None,
) -> dict[str, Any]:
    """A failure after the stream started: the SDKs raise APIError on the top-level `error`."""
    chunk = status_chunk(ident, "error", message, timestamp=timestamp, done=True)
    chunk["error"] = {"message": message, "type": type_, "code": code, "param": None}
    return chunk


def rewrite_upstream(chunk: dict[str, Any], ident: StreamIdentity) -> dict[str, Any]:
    """An engine's chunk, as the client sees it: our id, the model name it asked for."""
    out = dict(chunk)
    out["id"], out["model"], out["object"], out["created"] = (
        ident.id,
        ident.model,
        ident.object,
        ident.created,
    )
    return out


def delta_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    first = choices[0]
    if "delta" in first:
        return str((first.get("delta") or {}).get("content") or "")
    return str(first.get("text") or "")


def parse_sse_line(line: str) -> dict[str, Any] | str | None:
    """One line of an engine's SSE stream: a chunk, "[DONE]", or None (comments, blanks)."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return "[DONE]"
    value = orjson.loads(data)
    return value if isinstance(value, dict) else None

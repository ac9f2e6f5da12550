"""What clients send, checked at the edge: OpenAI request bodies (only the fields the router
reads; the rest passes through to the engine) and the API key."""

from __future__ import annotations

import hmac
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hearth_router.errors import RouterError, bad_request

Body = TypeVar("Body", bound=BaseModel)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    prompt: str | list[Any] = ""
    stream: bool = False


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[Any]


async def parse(request: Request, kind: type[Body]) -> tuple[Body, dict[str, Any]]:
    """The body as `kind` (for the router) and as sent (for the engine); 400 naming the field."""
    try:
        raw = json.loads(await request.body())
    except ValueError:
        raise bad_request("the request body is not valid JSON", "invalid_json") from None
    if not isinstance(raw, dict):
        raise bad_request("the request body must be a JSON object")
    try:
        return kind.model_validate(raw), raw
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise bad_request(f"{where}: {err['msg']}", "invalid_field") from None


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def check_key(token: str, keys: frozenset[str]) -> None:
    """401 unless `token` is one of `keys` (none configured: everyone is let in)."""
    if not keys:
        return
    if not token or not any(hmac.compare_digest(token, key) for key in keys):
        raise RouterError(
            401,
            "missing or invalid API key (send Authorization: Bearer <key>)",
            "invalid_request_error",
            "invalid_api_key",
        )

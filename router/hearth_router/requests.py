"""What clients send, checked at the edge: OpenAI request bodies (only the fields the router
reads; the rest passes through to the engine) and the API key."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hearth_router.errors import bad_request

Body = TypeVar("Body", bound=BaseModel)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = Field(default=False, strict=True)  # "yes" is no boolean: a 400, as OpenAI's


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    prompt: str | list[Any] = ""
    stream: bool = Field(default=False, strict=True)  # "yes" is no boolean: a 400, as OpenAI's


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[Any]


MAX_DEPTH = 64  # nesting a request may have: deeper is no chat, and the engines' encoders refuse it


def too_deep(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than `limit` deep (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


def openapi_body(kind: type[BaseModel]) -> dict[str, Any]:
    """The request body as OpenAPI documents it (the routes read the raw body themselves, to
    pass unknown fields through and to word their own 400s, so FastAPI cannot infer it)."""
    schema = kind.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


async def parse(request: Request, kind: type[Body]) -> tuple[Body, dict[str, Any]]:
    """The body as `kind` (for the router) and as sent (for the engine); 400 naming the field."""
    try:
        raw = json.loads(await request.body())
    except ValueError:
        raise bad_request("the request body is not valid JSON", "invalid_json") from None
    except RecursionError:  # `[[[[…` thousands deep: the parser's recursion, not a 500
        raise bad_request("the request body is nested too deeply", "invalid_json") from None
    if not isinstance(raw, dict):
        raise bad_request("the request body must be a JSON object")
    if too_deep(raw, MAX_DEPTH):
        raise bad_request(f"the request body is nested more than {MAX_DEPTH} levels deep", "invalid_json")
    try:
        return kind.model_validate(raw), raw
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise bad_request(f"{where}: {err['msg']}", "invalid_field") from None


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""

"""Request size limits as pure ASGI middleware (Starlette's BaseHTTPMiddleware would hide client
disconnects from the streams): the body, and the headers — the HTTP parser takes headers of any
size, and a client sending megabytes of them must not be served as if nothing happened."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from hearth_router.errors import RouterError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_response(exc: RouterError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for bodies over the limit, checked on Content-Length and on the bytes as they come;
    431 for headers over theirs."""

    def __init__(self, app: ASGIApp, limit: int, header_limit: int = 64 * 1024) -> None:
        self.app, self.limit, self.header_limit = app, limit, header_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if sum(len(k) + len(v) for k, v in scope.get("headers") or []) > self.header_limit:
            headers_too_big = RouterError(
                431,
                f"the request headers are larger than {self.header_limit} bytes",
                "invalid_request_error",
                "headers_too_large",
            )
            await error_response(headers_too_big)(scope, receive, send)
            return
        too_big = RouterError(
            413,
            f"the request body is larger than {self.limit} bytes",
            "invalid_request_error",
            "request_too_large",
        )
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await error_response(too_big)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await error_response(too_big)(scope, receive, send)

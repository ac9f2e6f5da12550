"""Errors in OpenAI's shape: `{"error": {"message", "type", "code", "param"}}`."""

from __future__ import annotations

from typing import Any


class RouterError(Exception):
    """A failure to tell the client about: an HTTP error before the stream, an error event after."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "server_error",
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": None}}

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, round(self.retry_after)))}


class EngineUnreachable(RouterError):
    """The engine refused the connection: the request never reached it, so it may be retried
    on a replica that is up (or once this one is back)."""

    def __init__(self, endpoint: str, message: str) -> None:
        super().__init__(502, message, code="upstream_unreachable")
        self.endpoint = endpoint


def bad_request(message: str, code: str = "invalid_request") -> RouterError:
    return RouterError(400, message, "invalid_request_error", code)


def unknown_model(name: str, known: list[str]) -> RouterError:
    listing = ", ".join(sorted(known)) or "none"
    return RouterError(
        404,
        f"The model '{name}' does not exist. Known models: {listing}.",
        "invalid_request_error",
        "model_not_found",
    )


def unavailable(
    message: str, code: str = "model_unavailable", retry_after: float | None = None
) -> RouterError:
    return RouterError(503, message, "server_error", code, retry_after)

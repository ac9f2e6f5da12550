"""API errors as Kubernetes `Status` objects with the reasons clients switch on."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def not_found(kind_plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind_plural} "{name}" not found', {"name": name, "kind": kind_plural})


def already_exists(kind_plural: str, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{kind_plural} "{name}" already exists', {"name": name, "kind": kind_plural}
    )


def conflict(kind_plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {kind_plural} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "kind": kind_plural},
    )


def invalid(kind: str, name: str, message: str, causes: list[dict[str, str]] | None = None) -> ApiError:
    """422 Invalid; `causes` (field, message) are what kubectl prints under the headline."""
    details: dict[str, Any] = {"name": name, "kind": kind}
    if causes:
        details["causes"] = [{"reason": "FieldValueInvalid", **c} for c in causes]
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {message}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)

"""httpx to the engines: stream chunks from one, or fetch a whole answer, with every failure
turned into a RouterError that says what happened."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from hearth_router.chunks import parse_sse_line
from hearth_router.errors import RouterError


class Upstream:
    def __init__(
        self, connect_timeout: float, stall_timeout: float, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        """`transport`: how to reach the engines — the network, or an engine's ASGI app in tests."""
        self.stall_timeout = stall_timeout
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(connect=connect_timeout, read=stall_timeout, write=30.0, pool=None),
            limits=httpx.Limits(max_connections=2000, max_keepalive_connections=200),
            transport=transport,
        )

    async def close(self) -> None:
        await self.http.aclose()

    def _failure(self, engine: str, exc: Exception) -> RouterError:
        if isinstance(exc, httpx.ConnectError):
            return RouterError(502, f"cannot reach {engine}: connection refused", code="upstream_unreachable")
        if isinstance(exc, httpx.TimeoutException):
            return RouterError(
                504, f"{engine} sent nothing for {self.stall_timeout:g} s", code="upstream_stalled"
            )
        return RouterError(
            502, f"{engine} closed the connection mid-answer ({type(exc).__name__})", code="upstream_died"
        )

    @staticmethod
    def _engine(endpoint: str, body: dict[str, Any]) -> str:
        """How errors name the engine: the model it serves (what the user asked for) and where."""
        return f"the {body.get('model')} engine at {endpoint}"

    @staticmethod
    async def _refusal(response: httpx.Response, engine: str) -> RouterError:
        raw = await response.aread()
        try:
            message = json.loads(raw)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = raw.decode(errors="replace")[:300]
        status = response.status_code if response.status_code < 500 else 502
        return RouterError(
            status,
            f"{engine} refused the request ({response.status_code}): {message}",
            "invalid_request_error" if status < 500 else "server_error",
            "upstream_error",
        )

    async def stream(self, endpoint: str, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The engine's chunks, up to its [DONE]; a stream that ends without one is an error."""
        engine = self._engine(endpoint, body)
        try:
            async with self.http.stream("POST", endpoint + path, json=body) as response:
                if response.status_code >= 400:
                    raise await self._refusal(response, engine)
                async for line in response.aiter_lines():
                    parsed = parse_sse_line(line)
                    if parsed == "[DONE]":
                        return
                    if isinstance(parsed, dict):
                        if "error" in parsed:
                            raise RouterError(
                                502,
                                f"{engine} failed: {parsed['error'].get('message')}",
                                code="upstream_error",
                            )
                        yield parsed
        except httpx.HTTPError as exc:
            raise self._failure(engine, exc) from exc
        raise RouterError(502, f"{engine} ended the answer early", code="upstream_died")

    async def fetch(self, endpoint: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        engine = self._engine(endpoint, body)
        try:
            response = await self.http.post(endpoint + path, json=body)
        except httpx.HTTPError as exc:
            raise self._failure(engine, exc) from exc
        if response.status_code >= 400:
            raise await self._refusal(response, engine)
        return dict(response.json())

"""aiohttp to the engines: stream chunks from one, or fetch a whole answer, with every failure
turned into a RouterError that says what happened.

aiohttp rather than httpx here: with tens of streams in flight, httpx's pool checked every
idle connection's socket before each request (`make bench`: router CPU per request grew with
the concurrency), where aiohttp's connector hands out a kept-alive connection in O(1).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from hearth_router.chunks import parse_sse_line
from hearth_router.errors import EngineUnreachable, RouterError


class Upstream:
    def __init__(self, connect_timeout: float, stall_timeout: float) -> None:
        self.stall_timeout = stall_timeout
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=stall_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running event loop."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _failure(self, engine: str, endpoint: str, exc: Exception, answered: bool) -> RouterError:
        """`answered`: the engine's response had begun. Before that, a dropped or refused
        connection means the engine never took the request (it died, or is restarting, or a
        kept-alive connection to it was dead): the request may go again."""
        if isinstance(exc, aiohttp.ClientConnectorError):
            return EngineUnreachable(endpoint, f"cannot reach {engine}: connection refused")
        if isinstance(exc, aiohttp.ClientError) and not answered:
            return EngineUnreachable(endpoint, f"{engine} dropped the connection before answering")
        if isinstance(exc, TimeoutError):
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
    async def _refusal(response: aiohttp.ClientResponse, engine: str) -> RouterError:
        raw = await response.read()
        try:
            message = json.loads(raw)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = raw.decode(errors="replace")[:300]
        status = response.status if response.status < 500 else 502
        return RouterError(
            status,
            f"{engine} refused the request ({response.status}): {message}",
            "invalid_request_error" if status < 500 else "server_error",
            "upstream_error",
        )

    async def stream(self, endpoint: str, path: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The engine's chunks, up to its [DONE]; a stream that ends without one is an error."""
        engine = self._engine(endpoint, body)
        done = answered = False
        try:
            async with self.session.post(endpoint + path, json=body) as response:
                answered = True
                if response.status >= 400:
                    raise await self._refusal(response, engine)
                async for line in _lines(response):
                    parsed = parse_sse_line(line)
                    if parsed == "[DONE]":
                        # Read on to the body's end (nothing but its terminator): a response left
                        # unread closes its connection, and every request would dial a new one.
                        done = True
                    if done or not isinstance(parsed, dict):
                        continue
                    if "error" in parsed:
                        raise RouterError(
                            502, f"{engine} failed: {parsed['error'].get('message')}", code="upstream_error"
                        )
                    yield parsed
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._failure(engine, endpoint, exc, answered) from exc
        if not done:
            raise RouterError(502, f"{engine} ended the answer early", code="upstream_died")

    async def fetch(self, endpoint: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        engine = self._engine(endpoint, body)
        answered = False
        try:
            async with self.session.post(endpoint + path, json=body) as response:
                answered = True
                if response.status >= 400:
                    raise await self._refusal(response, engine)
                return dict(await response.json(content_type=None))
        except (aiohttp.ClientError, TimeoutError, asyncio.IncompleteReadError) as exc:
            raise self._failure(engine, endpoint, exc, answered) from exc


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The body's lines as they arrive, however long (aiohttp's own readline caps a line)."""
    buffer = b""
    async for piece in response.content.iter_any():
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode().rstrip("\r")
    if buffer:
        yield buffer.decode().rstrip("\r")

"""Reads a running fetch's progress (`GET /progress` on its pod) for the operator to write into
`status.download`. Thin I/O; a fetch that does not answer yet (starting) reads as None."""

from __future__ import annotations

from typing import Any

import aiohttp

from hearth_api.weights_cache import PROGRESS_PORT


class ProgressReader:
    def __init__(self, timeout: float = 1.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, pod_ip: str) -> dict[str, Any] | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(f"http://{pod_ip}:{PROGRESS_PORT}/progress") as response:
                if response.status != 200:
                    return None
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

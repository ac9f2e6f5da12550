"""The API server on the network: listening on a host and port (http, or https as pods reach a
real API server), and able to go away and come back on the same port with its state."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp.web
import kmock

from hearth_sim.apiserver.server import HearthApiServer


class Listener:
    """The API server's HTTP side, which can go away and come back on the same port with its
    state (a restarting kube-apiserver: every watch ends, connections are refused meanwhile).
    With an SSL context it serves https, as pods reach a real API server (in-cluster config)."""

    def __init__(self, api: HearthApiServer, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self.api, self.host, self.port, self.tls = api, host, port, tls
        self._http: kmock.Server | None = None
        self._https: aiohttp.web.ServerRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    async def start(self) -> None:
        if self.tls is not None:
            # kmock's server has no TLS: aiohttp's low-level server runs the same handler.
            runner = aiohttp.web.ServerRunner(aiohttp.web.Server(self.api), handle_signals=False)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, self.host, self.port, ssl_context=self.tls)
            await site.start()
            self._https = runner
            self.port = runner.addresses[0][1]
            return
        self._http = kmock.Server(self.api, host=self.host, port=self.port or None)
        await self._http.__aenter__()
        self.port = self._http.port

    async def stop(self) -> None:
        if self._http is not None or self._https is not None:
            self.api.end_watches()  # or the HTTP server waits for every open watch before it stops
        if self._http is not None:
            http, self._http = self._http, None
            await http.__aexit__(None, None, None)
        if self._https is not None:
            https, self._https = self._https, None
            await https.cleanup()

    async def restart(self, downtime: float) -> None:
        """Down for `downtime` seconds, then up again on the same port, state kept."""
        await self.stop()
        await asyncio.sleep(downtime)
        await self.start()


@asynccontextmanager
async def serve_api(
    host: str = "127.0.0.1", port: int = 0, server: HearthApiServer | None = None
) -> AsyncIterator[tuple[HearthApiServer, str]]:
    """Serve the API on host:port (0 picks a free port); yields the server and its URL."""
    async with serve_restartable(host, port, server) as listener:
        yield listener.api, listener.url


@asynccontextmanager
async def serve_restartable(
    host: str = "127.0.0.1", port: int = 0, server: HearthApiServer | None = None
) -> AsyncIterator[Listener]:
    api = server if server is not None else HearthApiServer()
    async with api:
        listener = Listener(api, host, port)
        await listener.start()
        try:
            yield listener
        finally:
            await listener.stop()

"""Drain, not drop: a router being stopped (SIGTERM — `helm upgrade`, a node drain) stops
taking connections at once and lets every stream it holds finish, loading, queued or
generating, for up to `drain_seconds`; a stream still running then ends with an error event
saying the router is restarting, and [DONE] — never a cut connection.

uvicorn does the rest of a graceful stop: it closes the listening socket, closes idle
kept-alive connections, and waits for the open ones (here up to the drain deadline and a few
seconds for the last events to go out). The dashboard's live feed ends at once: a browser's
EventSource reconnects, through the Ingress, to a replica that is not stopping. The chart gives
the pod `terminationGracePeriodSeconds` = drain + 30 and a short preStop pause, so endpoints
and the Ingress stop sending it requests before it stops listening.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from types import FrameType

import uvicorn

from hearth_router.services import Services
from hearth_router.streaming import StreamJob

log = logging.getLogger("hearth.router")
FLUSH_SECONDS = 5.0  # after the deadline: for the last error events and [DONE] to be written


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which on its first SIGTERM/SIGINT also starts the drain."""

    def __init__(self, config: uvicorn.Config, services: Services, drain_seconds: float) -> None:
        config.timeout_graceful_shutdown = int(drain_seconds + FLUSH_SECONDS)
        super().__init__(config)
        self.inflight, self.registry = services.inflight, services.registry
        self.drain_seconds = drain_seconds
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.should_exit  # a second signal is uvicorn's "stop now"
        super().handle_exit(sig, frame)
        if first and self._loop is not None:
            # A signal handler runs between two bytecodes: hand the work to the loop.
            self._loop.call_soon_threadsafe(self._begin)

    def _begin(self) -> None:
        held = len(self.inflight.active)
        log.info("stopping: draining %d stream(s) for up to %.0f s", held, self.drain_seconds)
        self.inflight.begin_drain()
        self.registry.changed.notify()  # the dashboard feeds see it and end
        assert self._loop is not None
        self._loop.call_later(self.drain_seconds, self._deadline)

    def _deadline(self) -> None:
        # Whole answers (stream: false) have no events to say it in: uvicorn ends them after the flush.
        left = [job for job in self.inflight.active.values() if isinstance(job, StreamJob)]
        if left:
            log.warning("drain deadline: ending %d stream(s) with 'the router is restarting'", len(left))
        for job in left:
            job.end_for_restart()

"""The connection to the store router replicas share (Redis or Valkey): a bounded pool — one
try per step, each within `timeout`, so nothing hangs on a dead store — the Lua steps of
store_scripts.py registered once, the key names, and the turn channel on its own connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hearth_router import store_scripts

FAILURES = (RedisError, OSError, TimeoutError)  # a store step that did not happen
STEPS = ("JOIN", "GRANT", "PLACES", "RELEASE", "REQUEUE", "HEARTBEAT", "RESTORE", "RECORD", "COUNTS")


class StoreClient:
    def __init__(self, url: str, prefix: str, timeout: float, retry_pause: float) -> None:
        self.prefix, self.timeout, self.retry_pause = prefix, timeout, retry_pause
        no_retries = Retry(NoBackoff(), 0)  # bounded: one try per step, then the line goes local
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=timeout, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.redis = redis.Redis(connection_pool=pool, retry=no_retries)
        # The turn channel's own connection: it waits for messages, so no read timeout.
        self.listener = redis.Redis.from_url(url, socket_connect_timeout=timeout, retry=no_retries)
        self.scripts = {name: self.redis.register_script(getattr(store_scripts, name)) for name in STEPS}
        self.channel = f"{prefix}:turn"

    # --- key names ------------------------------------------------------------------------------

    def q(self, key: str) -> str:
        """A model's line: ticket ids by arrival score."""
        return f"{self.prefix}:q:{key}"

    def qx(self, key: str) -> str:
        """When each ticket in a model's line expires (renewed by its replica's heartbeat)."""
        return f"{self.prefix}:qx:{key}"

    def lease(self, endpoint: str) -> str:
        return f"{self.prefix}:l:{endpoint}"

    def name(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # --- steps ------------------------------------------------------------------------------------

    async def step(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """One Lua step, run whole by the store, within `timeout` (raises one of FAILURES)."""
        async with asyncio.timeout(self.timeout):
            return await self.scripts[name](keys=keys, args=args)

    async def bounded(self, call: Callable[[], Awaitable[Any]]) -> Any:
        async with asyncio.timeout(self.timeout):
            return await call()

    async def turns(self) -> AsyncIterator[str]:
        """The ticket ids told "your turn" by any replica's step; reconnects while the store is
        away, for as long as it is iterated."""
        while True:
            try:
                async with self.listener.pubsub() as channel:
                    await channel.subscribe(self.channel)
                    while True:
                        message = await channel.get_message(ignore_subscribe_messages=True, timeout=5.0)
                        if message is not None:
                            yield message["data"].decode()
            except FAILURES:
                await asyncio.sleep(self.retry_pause)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.listener.aclose()

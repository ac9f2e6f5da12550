"""The router's annotations on a ModelDeployment: wake-requested-at and last-activity, and the
dashboard's explicit sleep-requested-at.

One owner decides to wake (KubeAI's lesson): callers never check the phase and race. A wake is
sent once per cold period however many requests wait — across router replicas too, when they
share a line (its `claim_wake`); activity is sent at most once per
`interval` per model while requests wait or stream, so the operator never scales a busy model
to zero or evicts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from hearth_api.model_deployment import Phase
from hearth_api.names import GROUP, LAST_ACTIVITY, PLURAL, SLEEP_REQUESTED_AT, VERSION, WAKE_REQUESTED_AT
from hearth_api.times import now_rfc3339
from hearth_router.errors import RouterError, unavailable
from hearth_router.line import Line, LocalLine

log = logging.getLogger("hearth.router.annotations")
MERGE = "application/merge-patch+json"
AWAKE = (Phase.DOWNLOADING, Phase.LOADING, Phase.WARM)  # a wake is on its way or done
REWAKE_AFTER = 30.0  # a wake the operator has not acted on is sent again after this long


class Annotator:
    def __init__(
        self, api: client.ApiClient | None, activity_interval: float = 30.0, line: Line | None = None
    ) -> None:
        self.custom: Any = client.CustomObjectsApi(api) if api is not None else None
        self.activity_interval = activity_interval
        self.line: Line = line if line is not None else LocalLine()
        self._woken: dict[str, float] = {}  # key → when this cold period's wake was sent
        self._active: dict[str, float] = {}  # key → when activity was last sent
        # key → the newest phase seen: a request that waited for the lock behind a store step
        # holds an older one, and must not start a cold period that is already over
        self._phase: dict[str, Phase | None] = {}
        self._answered: set[str] = set()  # keys whose wake was answered, guard still held (observe)
        self._lock = asyncio.Lock()

    async def _patch(self, key: str, annotations: dict[str, str]) -> None:
        if self.custom is None:
            return  # no cluster (an app built around a pre-filled registry)
        namespace, name = key.split("/", 1)
        await self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"metadata": {"annotations": annotations}},
            _content_type=MERGE,
        )

    def observe(self, key: str, phase: Phase | None) -> None:
        """A phase the watch saw: once the model is loading or up, this replica's wake is answered;
        the shared wake guard goes only once the load is over (Warm, Failed, or Cold again). Not
        at Loading: another replica's watch may not have seen the wake's effect yet, and a guard
        gone then let it send a second wake for the same cold period (two replicas under load
        did; `make test`'s bench smoke caught it with both cores busy)."""
        self._phase[key] = phase
        if phase in (*AWAKE, Phase.FAILED) and self._woken.pop(key, None) is not None:
            self._answered.add(key)
        if phase in (Phase.WARM, Phase.FAILED, Phase.COLD) and key in self._answered:
            self._answered.discard(key)
            self.line.wake_over(key)

    async def ensure_awake(self, key: str, phase: Phase | None) -> None:
        """Send one wake per cold period (and activity with it). A wake the API server refuses
        is the client's error to see — a countdown for a load nobody asked for would be a lie."""
        if phase in AWAKE:
            return
        async with self._lock:  # the check and the send are one step
            if self._phase.get(key, phase) in AWAKE:
                return  # it woke while this request waited for the lock
            now = time.monotonic()
            sent = self._woken.get(key)
            if sent is not None and now - sent < REWAKE_AFTER:
                return
            self._woken[key] = self._active[key] = now
            # Another replica sent this cold period's wake: this one only waits for the load.
            if not await self.line.claim_wake(key, REWAKE_AFTER):
                return
        await self._send_wake(key)

    async def request_wake(self, key: str) -> None:
        """A user's "Warm up now": a wake sent whatever this cold period saw (after an unload, a
        wake must be newer than it)."""
        async with self._lock:
            self._woken[key] = self._active[key] = time.monotonic()
        await self._send_wake(key)

    async def _send_wake(self, key: str) -> None:
        when = now_rfc3339()
        try:
            await self._patch(key, {WAKE_REQUESTED_AT: when, LAST_ACTIVITY: when})
        except (ApiException, OSError, aiohttp.ClientError) as exc:
            self._woken.pop(key, None)  # the next request tries again
            raise wake_refused(key, exc) from exc

    async def request_sleep(self, key: str) -> None:
        """A user's "Unload": the operator scales the model to zero unless a request comes after.
        The next request sends a fresh wake (this cold period has not been woken yet)."""
        async with self._lock:
            self._woken.pop(key, None)
        self.line.wake_over(key)
        try:
            await self._patch(key, {SLEEP_REQUESTED_AT: now_rfc3339()})
        except (ApiException, OSError, aiohttp.ClientError) as exc:
            raise wake_refused(key, exc, "unload") from exc

    async def touch(self, key: str, idle_timeout: float | None = None) -> None:
        """Record activity, at most every `activity_interval` — or a third of the model's idle
        timeout when that is shorter, so a short timeout never runs out under a live request.
        Best effort: a lost activity stamp costs at most an early scale-down."""
        now = time.monotonic()
        last = self._active.get(key)
        interval = self.activity_interval
        if idle_timeout is not None:
            interval = min(interval, max(idle_timeout / 3, 0.5))
        if last is not None and now - last < interval:
            return
        self._active[key] = now
        try:
            await self._patch(key, {LAST_ACTIVITY: now_rfc3339()})
        except (ApiException, OSError, aiohttp.ClientError) as exc:
            log.warning("could not record activity on %s: %s", key, _why(exc))


def _why(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def wake_refused(key: str, exc: Exception, action: str = "wake") -> RouterError:
    name = key.split("/", 1)[-1]
    if isinstance(exc, ApiException) and exc.status == 404:
        return unavailable(f"{name} was deleted while the request waited", "model_deleted")
    if isinstance(exc, ApiException) and exc.status in (401, 403):
        return unavailable(
            f"cannot {action} {name}: the Kubernetes API refused the router ({exc.status} {exc.reason}); "
            "check its RBAC (patch on modeldeployments)",
            f"{action}_refused",
        )
    return unavailable(
        f"cannot {action} {name}: the Kubernetes API did not take it ({_why(exc)})", f"{action}_failed"
    )

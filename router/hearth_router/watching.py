"""List, then watch: the one loop behind every cache the router keeps of cluster objects.

It lists, then watches from the list's resourceVersion; after a broken watch it resumes from the
last version it saw, and re-lists when that is too old (410) — so no change is missed across
API-server restarts. A refusal (401/403) is kept in `denied` for the API to report, and retried
slowly, since RBAC may be fixed while the router runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import watch
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger("hearth.router.watching")

ListCall = Callable[..., Awaitable[Any]]


class ListWatch:
    def __init__(
        self,
        what: str,
        list_call: ListCall,
        args: tuple[str, ...],
        relist: Callable[[list[dict[str, Any]]], None],
        apply: Callable[[str, dict[str, Any]], None],
        to_dict: Callable[[Any], Any] = lambda obj: obj,
    ) -> None:
        # The client's list method itself with its positional args, not a partial: the watch
        # reads the method's docstring for what it returns.
        self.what = what  # for logs: "ModelDeployments", "Nodes"
        self.list_call, self.args = list_call, args
        self.relist = relist  # the whole list, after a (re)list
        self.apply = apply  # one ADDED / MODIFIED / DELETED event
        self.to_dict = to_dict  # a typed list (V1NodeList) → plain dicts; watch events carry raw JSON
        self.denied: str | None = None

    async def _list(self) -> str:
        listing = self.to_dict(await self.list_call(*self.args))
        self.relist(list(listing.get("items") or []))
        self.denied = None
        return str(listing["metadata"]["resourceVersion"])

    async def _watch(self, rv: str) -> str:
        """Follow the watch until it ends; the version to resume from ("" to re-list)."""
        async with watch.Watch().stream(
            self.list_call, *self.args, resource_version=rv, timeout_seconds=300, allow_watch_bookmarks=True
        ) as stream:
            async for event in stream:
                kind, obj = event["type"], event.get("raw_object") or event["object"]
                if kind == "ERROR":
                    return "" if obj.get("code") == 410 else rv
                rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                if kind != "BOOKMARK":
                    self.apply(kind, obj)
        return rv

    async def run(self) -> None:
        rv = ""
        backoff = 0.2
        while True:
            try:
                rv = await self._watch(rv or await self._list())
                backoff = 0.2
                continue
            except ApiException as exc:
                if exc.status == 410:
                    rv = ""
                    continue
                if exc.status in (401, 403):
                    self.denied = (
                        f"the Kubernetes API refused to list {self.what} ({exc.status} {exc.reason})"
                    )
                    backoff = 30.0
                log.warning("watching %s failed (%s); retrying in %.1f s", self.what, exc.status, backoff)
            except (OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("the %s watch broke (%s); resuming in %.1f s", self.what, exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0 if self.denied else 5.0)

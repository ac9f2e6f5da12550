"""The router's view of the models: one watch on ModelDeployments, kept in memory.

The operator writes the truth into each CR's status; this keeps the latest copy of every CR,
resolves names and aliases, and wakes everyone waiting on a change. It lists, then watches from
the list's resourceVersion; after a broken watch it resumes from the last version it saw, and
re-lists when that is too old (410) — so no phase change is missed across API-server restarts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from hearth_api.model_deployment import ModelDeployment
from hearth_api.names import GROUP, PLURAL, VERSION
from hearth_router.signals import Signal

log = logging.getLogger("hearth.router.registry")


@dataclass(frozen=True)
class Entry:
    key: str  # namespace/name
    md: ModelDeployment


class Registry:
    def __init__(self, api: client.ApiClient | None, namespace: str | None = None) -> None:
        self.custom: Any = client.CustomObjectsApi(api) if api is not None else None
        self.namespace = namespace
        self.entries: dict[str, Entry] = {}
        self.ready = asyncio.Event()
        self._changed = Signal()
        self.listeners: set[asyncio.Queue[Entry | str]] = set()

    # --- reading -----------------------------------------------------------------------------

    def resolve(self, name: str) -> Entry | None:
        """By `model` first, then by alias; among namespaces, the first in name order."""
        for entry in sorted(self.entries.values(), key=lambda e: e.key):
            if entry.md.spec.model == name:
                return entry
        for entry in sorted(self.entries.values(), key=lambda e: e.key):
            if name in entry.md.spec.aliases:
                return entry
        return None

    def names(self) -> list[str]:
        return sorted({n for e in self.entries.values() for n in e.md.spec.names})

    def get(self, key: str) -> Entry | None:
        return self.entries.get(key)

    async def wait_change(self, within: float) -> None:
        """Return on the next change of any model, or after `within` seconds."""
        await self._changed.wait(within)

    # --- writing (from the watch, or from tests that feed objects directly) -------------------

    def apply(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace', 'default')}/{meta.get('name')}"
        if kind == "DELETED":
            if self.entries.pop(key, None) is not None:
                self._notify(key)
            return
        try:
            md = ModelDeployment.model_validate(obj)
        except ValidationError as exc:
            log.warning("ignoring %s: its spec is invalid (%s)", key, exc.errors()[0].get("msg"))
            if self.entries.pop(key, None) is not None:
                self._notify(key)
            return
        entry = Entry(key, md)
        self.entries[key] = entry
        self._notify(entry)

    def _notify(self, change: Entry | str) -> None:
        self._changed.notify()
        for queue in list(self.listeners):
            queue.put_nowait(change)

    # --- the watch ---------------------------------------------------------------------------

    async def _list(self, **kw: Any) -> Any:
        if self.namespace:
            return await self.custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, **kw
            )
        return await self.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kw)

    async def _relist(self) -> str:
        listing = await self._list()
        fresh = {
            f"{o['metadata'].get('namespace', 'default')}/{o['metadata']['name']}": o
            for o in listing.get("items", [])
        }
        for key in list(self.entries):
            if key not in fresh:
                self.apply(
                    "DELETED", {"metadata": dict(zip(("namespace", "name"), key.split("/", 1), strict=True))}
                )
        for obj in fresh.values():
            self.apply("ADDED", obj)
        self.ready.set()
        return str(listing["metadata"]["resourceVersion"])

    async def run(self) -> None:
        rv = ""
        backoff = 0.2
        while True:
            try:
                if not rv:
                    rv = await self._relist()
                w = watch.Watch()
                func = (
                    self.custom.list_namespaced_custom_object
                    if self.namespace
                    else self.custom.list_cluster_custom_object
                )
                args = (
                    (GROUP, VERSION, self.namespace, PLURAL) if self.namespace else (GROUP, VERSION, PLURAL)
                )
                async with w.stream(
                    func, *args, resource_version=rv, timeout_seconds=300, allow_watch_bookmarks=True
                ) as stream:
                    async for event in stream:
                        kind, obj = event["type"], event["object"]
                        if kind == "ERROR":
                            rv = "" if obj.get("code") == 410 else rv
                            break
                        rv = (obj.get("metadata") or {}).get("resourceVersion", rv)
                        if kind != "BOOKMARK":
                            self.apply(kind, obj)
                backoff = 0.2
            except ApiException as exc:
                if exc.status == 410:
                    rv = ""
                    continue
                log.warning("watching ModelDeployments failed (%s); retrying in %.1f s", exc.status, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except (OSError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
                log.warning("the ModelDeployment watch broke (%s); resuming in %.1f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

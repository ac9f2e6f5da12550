"""The router's view of the models: one watch on ModelDeployments, kept in memory.

The operator writes the truth into each CR's status; this keeps the latest copy of every CR,
resolves names and aliases, and wakes everyone waiting on a change (`ListWatch` keeps the copy
current across broken watches and API-server restarts).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client
from pydantic import ValidationError

from hearth_api.model_deployment import ModelDeployment
from hearth_api.names import GROUP, PLURAL, VERSION
from hearth_router.signals import Signal
from hearth_router.watching import ListWatch

log = logging.getLogger("hearth.router.registry")


@dataclass(frozen=True)
class Entry:
    key: str  # namespace/name
    md: ModelDeployment
    # When the router first read the download figures this version carries (status.download,
    # rewritten every 2 s while the weights download; other changes leave them as they were).
    download_seen: float = field(default_factory=time.monotonic)

    @property
    def download_age(self) -> float:
        return time.monotonic() - self.download_seen


class Registry:
    def __init__(self, api: client.ApiClient | None, namespace: str | None = None) -> None:
        self.custom: Any = client.CustomObjectsApi(api) if api is not None else None
        self.namespace = namespace
        self.entries: dict[str, Entry] = {}
        self.ready = asyncio.Event()
        self.changed = Signal()  # any model changed (and, from `Nodes`, any GPU node)
        self._changed_one: dict[str, Signal] = {}  # one model changed: what its waiters wait for

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

    async def wait_change(self, within: float, key: str | None = None) -> None:
        """Return on the next change of any model (or only of the model `key`: a request waiting
        for its model is not woken by the others'), or after `within` seconds."""
        if key is None:
            await self.changed.wait(within)
        else:
            await self._changed_one.setdefault(key, Signal()).wait(within)

    def _notify(self, key: str) -> None:
        self.changed.notify()
        one = self._changed_one.get(key)
        if one is not None:
            one.notify()

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
        before = self.entries.get(key)
        if before is not None and before.md.status.download == md.status.download:
            self.entries[key] = Entry(key, md, before.download_seen)
        else:
            self.entries[key] = Entry(key, md)
        self._notify(key)

    # --- the watch ---------------------------------------------------------------------------

    def _relist(self, items: list[dict[str, Any]]) -> None:
        fresh = {f"{o['metadata'].get('namespace', 'default')}/{o['metadata']['name']}": o for o in items}
        for key in list(self.entries):
            if key not in fresh:
                self.apply(
                    "DELETED", {"metadata": dict(zip(("namespace", "name"), key.split("/", 1), strict=True))}
                )
        for obj in fresh.values():
            self.apply("ADDED", obj)
        self.ready.set()

    async def run(self) -> None:
        args: tuple[str, ...]
        call, args = self.custom.list_cluster_custom_object, (GROUP, VERSION, PLURAL)
        if self.namespace:
            call, args = self.custom.list_namespaced_custom_object, (GROUP, VERSION, self.namespace, PLURAL)
        await ListWatch("ModelDeployments", call, args, self._relist, self.apply).run()

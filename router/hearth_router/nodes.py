"""The router's read-only view of the GPU nodes, for the dashboard's GPU map.

A watch like the models' (`ListWatch`); each change wakes the same `Signal` as a model change,
so the board's feed sends the new map at once. Without RBAC to read Nodes the router still
serves chats; `/api/gpus` then says why the map is empty.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client

from hearth_router.signals import Signal
from hearth_router.watching import ListWatch


class Nodes:
    def __init__(self, api: client.ApiClient | None, changed: Signal) -> None:
        self.api = api
        self.changed = changed
        self.by_name: dict[str, dict[str, Any]] = {}
        self.watch: ListWatch | None = None

    @property
    def denied(self) -> str | None:
        return self.watch.denied if self.watch is not None else None

    def _relist(self, items: list[dict[str, Any]]) -> None:
        self.by_name = {n["metadata"]["name"]: n for n in items}
        self.changed.notify()

    def _apply(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if kind == "DELETED":
            self.by_name.pop(name, None)
        else:
            self.by_name[name] = obj
        self.changed.notify()

    async def run(self) -> None:
        assert self.api is not None
        core = client.CoreV1Api(self.api)
        self.watch = ListWatch(
            "Nodes", core.list_node, (), self._relist, self._apply, self.api.sanitize_for_serialization
        )
        await self.watch.run()

"""What the API server serves, and who listens: resource types and watches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hearth_sim.apiserver.selectors import Matcher

Obj = dict[str, Any]
Event = dict[str, Any]

INITIAL_EVENTS_END = "k8s.io/initial-events-end"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(eq=False)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    shortnames: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    printer_columns: list[dict[str, Any]] | None = None
    crd_name: str | None = None  # set for custom resources
    schema: dict[str, Any] | None = None  # the CRD's openAPIV3Schema: defaults and validation

    @property
    def key(self) -> str:
        return f"{self.group}/{self.version}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


@dataclass(eq=False)
class Watch:
    rtype: ResourceType
    namespace: str | None
    name: str | None
    labels: Matcher
    fields: Matcher
    queue: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)

    def matches(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.name is not None and meta.get("name") != self.name:
            return False
        return self.labels(obj) and self.fields(obj)

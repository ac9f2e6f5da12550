"""Server-side Tables for `kubectl get`: printer columns, Go-style ages, partial metadata rows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hearth_api.times import parse_time

Column = dict[str, Any]
Cell = Callable[[dict[str, Any], datetime], Any]

TABLE_ACCEPT = "as=Table"


def wants_table(accept: str | None) -> bool:
    """kubectl asks `application/json;as=Table;v=v1;g=meta.k8s.io, application/json`."""
    return bool(accept) and TABLE_ACCEPT in accept.split(",")[0].replace(" ", "")  # type: ignore[union-attr]


def human_age(seconds: float) -> str:
    """kubectl's HumanDuration: 42s, 3m12s, 45m, 5h3m, 30h, 3d4h, 12d, 2y."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def _age(obj: dict[str, Any], now: datetime) -> str:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return human_age((now - created).total_seconds()) if created else "<unknown>"


def json_path(obj: Any, path: str) -> Any:
    """The simple dotted JSONPath printer columns use (`.status.warmup.estimateSeconds`)."""
    node = obj
    for part in path.strip().lstrip(".").split("."):
        if not part:
            continue
        if isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def _col(name: str, type_: str = "string", priority: int = 0, fmt: str = "") -> Column:
    return {"name": name, "type": type_, "format": fmt, "description": "", "priority": priority}


def _pod_ready(obj: dict[str, Any], _: datetime) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or []) or len(statuses)
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(obj: dict[str, Any], _: datetime) -> str:
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            return str(waiting["reason"])
    return str(status.get("phase") or "Pending")


def _restarts(obj: dict[str, Any], _: datetime) -> int:
    return sum(
        int(s.get("restartCount", 0)) for s in (obj.get("status") or {}).get("containerStatuses") or []
    )


def _path(p: str) -> Cell:
    return lambda obj, _: json_path(obj, p)


def _node_status(obj: dict[str, Any], _: datetime) -> str:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return "Ready" if c.get("status") == "True" else "NotReady"
    return "Unknown"


# Built-in kinds kubectl users look at here; others get Name and Age.
BUILTIN: dict[str, list[tuple[Column, Cell]]] = {
    "Pod": [
        (_col("Ready"), _pod_ready),
        (_col("Status"), _pod_status),
        (_col("Restarts", "integer"), _restarts),
        (_col("IP", priority=1), _path(".status.podIP")),
        (_col("Node", priority=1), _path(".spec.nodeName")),
    ],
    "Deployment": [
        (
            _col("Ready"),
            lambda o, _: (
                f"{json_path(o, '.status.readyReplicas') or 0}/{json_path(o, '.spec.replicas') or 0}"
            ),
        ),
        (_col("Up-to-date", "integer"), lambda o, _: json_path(o, ".status.updatedReplicas") or 0),
        (_col("Available", "integer"), lambda o, _: json_path(o, ".status.availableReplicas") or 0),
    ],
    "Node": [
        (_col("Status"), _node_status),
        (
            _col("GPU"),
            lambda o, _: ((o.get("metadata") or {}).get("labels") or {}).get("hearth.dev/gpu-class", ""),
        ),
    ],
    "Event": [
        (_col("Type"), _path(".type")),
        (_col("Reason"), _path(".reason")),
        (
            _col("Object"),
            lambda o, _: (
                f"{json_path(o, '.involvedObject.kind')}/{json_path(o, '.involvedObject.name')}".lower()
            ),
        ),
        (_col("Message"), _path(".message")),
    ],
}


def _printer_cell(col: dict[str, Any]) -> Cell:
    path, kind = col["jsonPath"], col.get("type", "string")

    def cell(obj: dict[str, Any], now: datetime) -> Any:
        value = json_path(obj, path)
        if kind == "date":
            when = parse_time(value)
            return human_age((now - when).total_seconds()) if when else "<unknown>"
        return value  # missing: null, as the API server's CRD table convertor sends (kubectl: <none>)

    return cell


def columns_for(kind: str, printer_columns: list[dict[str, Any]] | None) -> list[tuple[Column, Cell]]:
    name = (_col("Name", fmt="name"), lambda o, _: (o.get("metadata") or {}).get("name", ""))
    if printer_columns:
        custom = [
            (_col(c["name"], c.get("type", "string"), int(c.get("priority", 0))), _printer_cell(c))
            for c in printer_columns
        ]
        has_age = any(c["name"] == "Age" for c in printer_columns)
        age: list[tuple[Column, Cell]] = [] if has_age else [(_col("Age"), _age)]
        return [name, *custom, *age]
    return [name, *BUILTIN.get(kind, []), (_col("Age"), _age)]


def partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def table(
    kind: str,
    printer_columns: list[dict[str, Any]] | None,
    objects: list[dict[str, Any]],
    resource_version: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    cols = columns_for(kind, printer_columns)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [c for c, _ in cols],
        "rows": [
            {"cells": [cell(o, now) for _, cell in cols], "object": partial_metadata(o)} for o in objects
        ],
    }

"""Patch flavours the API accepts: JSON merge, strategic merge (approximated), JSON patch."""

from __future__ import annotations

import copy
from typing import Any

from hearth_sim.apiserver.errors import ApiError

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _named(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(i, dict) and "name" in i for i in items)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Strategic merge as kubectl uses it, for what matters here: lists of named items
    (containers, env, ports, volumes) merge by name, `$patch: delete` removes an item,
    other `$` directives are dropped; everything else is a JSON merge."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif _named(value) and _named(result.get(key)):
            merged = {i["name"]: i for i in result[key]}
            for item in value:
                if item.get("$patch") == "delete":
                    merged.pop(item["name"], None)
                else:
                    merged[item["name"]] = strategic_merge_patch(merged.get(item["name"]), item)
            result[key] = list(merged.values())
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"json patch path {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(422, "Invalid", f"json patch path {path!r} does not exist") from None
    return node, parts[-1]


def _get(doc: Any, path: str) -> Any:
    node = doc
    for part in _pointer(path):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(422, "Invalid", f"json patch path {path!r} does not exist") from None
    return node


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902. A failed `test` is 422 Invalid, as kube-apiserver answers."""
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        if kind == "test":
            if _get(doc, path) != op.get("value"):
                raise ApiError(422, "Invalid", f"json patch test failed at {path!r}")
            continue
        if kind in ("move", "copy"):
            value = copy.deepcopy(_get(doc, op["from"]))
            if kind == "move":
                doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
            doc = json_patch(doc, [{"op": "add", "path": path, "value": value}])
            continue
        parts = _pointer(path)
        if not parts:
            if kind in ("add", "replace"):
                doc = copy.deepcopy(op["value"])
                continue
            raise ApiError(422, "Invalid", "cannot remove the whole document")
        parent, last = _parent(doc, parts, path)
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(index, copy.deepcopy(op["value"]))
            elif kind == "remove":
                parent.pop(index)
            elif kind == "replace":
                parent[index] = copy.deepcopy(op["value"])
            else:
                raise ApiError(400, "BadRequest", f"unknown json patch op {kind!r}")
        elif isinstance(parent, dict):
            if kind in ("remove", "replace") and last not in parent:
                raise ApiError(422, "Invalid", f"json patch path {path!r} does not exist")
            if kind == "remove":
                del parent[last]
            elif kind in ("add", "replace"):
                parent[last] = copy.deepcopy(op["value"])
            else:
                raise ApiError(400, "BadRequest", f"unknown json patch op {kind!r}")
        else:
            raise ApiError(422, "Invalid", f"json patch path {path!r} does not exist")
    return doc


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> Any:
    kind = content_type.split(";")[0].strip().lower()
    if kind == JSON_PATCH:
        return json_patch(target, patch)
    if kind == STRATEGIC:
        return strategic_merge_patch(target, patch)
    if kind in (MERGE, APPLY, "application/json"):
        return merge_patch(target, patch)
    raise ApiError(415, "UnsupportedMediaType", f"the patch content type {kind!r} is not supported")

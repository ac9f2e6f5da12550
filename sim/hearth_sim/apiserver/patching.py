"""Patch flavours the API accepts: JSON merge, strategic merge (approximated), JSON patch."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from jsonpointer import JsonPointerException

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


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 (python-json-patch), answered as kube-apiserver answers: a failed `test` or a
    path that does not exist is 422 Invalid, a malformed patch 400; the input is never touched."""
    if not isinstance(ops, list):
        raise ApiError(400, "BadRequest", "json patch must be a list of operations")
    try:
        return jsonpatch.apply_patch(doc, ops, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise ApiError(422, "Invalid", f"json patch test failed: {exc}") from None
    except (jsonpatch.JsonPatchConflict, JsonPointerException) as exc:
        raise ApiError(422, "Invalid", f"json patch path does not exist: {exc}") from None
    except (jsonpatch.InvalidJsonPatch, jsonpatch.JsonPatchException, TypeError, ValueError) as exc:
        raise ApiError(400, "BadRequest", f"invalid json patch: {exc}") from None


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> Any:
    kind = content_type.split(";")[0].strip().lower()
    if kind == JSON_PATCH:
        return json_patch(target, patch)
    if kind == STRATEGIC:
        return strategic_merge_patch(target, patch)
    if kind in (MERGE, APPLY, "application/json"):
        return merge_patch(target, patch)
    raise ApiError(415, "UnsupportedMediaType", f"the patch content type {kind!r} is not supported")

"""What kube-apiserver does with a custom resource's structural schema, as pure functions:
fill in defaults, find (and prune) unknown fields, validate — messages naming the field."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

Schema = dict[str, Any]


def _preserves(schema: Schema) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Defaults of absent properties, recursively (as the API server applies them on write)."""
    if isinstance(value, dict) and "properties" in schema:
        out = dict(value)
        for name, sub in schema["properties"].items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(sub, out[name])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def unknown_fields(schema: Schema, value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict) and "properties" in schema and not _preserves(schema):
        found = [f"{path}{k}" for k in value if k not in schema["properties"]]
        for name, sub in schema["properties"].items():
            if name in value:
                found += unknown_fields(sub, value[name], f"{path}{name}.")
        return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [f for i, v in enumerate(value) for f in unknown_fields(schema["items"], v, f"{path}[{i}].")]
    return []


def prune(schema: Schema, value: Any) -> Any:
    if isinstance(value, dict) and "properties" in schema and not _preserves(schema):
        return {k: prune(schema["properties"][k], v) for k, v in value.items() if k in schema["properties"]}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], v) for v in value]
    return value


Problem = tuple[str, str]  # (field, message)


def problems(schema: Schema, value: Any) -> list[Problem]:
    """(`spec.gpu.vramGiB`, `Invalid value: 0: 0 is less than the minimum of 1`), one per error."""
    out = []
    validator = jsonschema.Draft4Validator(schema)
    for err in sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) for p in err.absolute_path) or "<root>"
        out.append((where, f"Invalid value: {err.instance!r}: {err.message}"))
    return out


def admit(schema: Schema, obj: dict[str, Any], strict: bool) -> tuple[dict[str, Any], list[Problem]]:
    """The object as stored (defaulted, pruned) and what is wrong with it. With `strict`
    (kubectl's default `fieldValidation=Strict`), unknown fields are errors, not pruned."""
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    errors: list[Problem] = []
    if strict:
        errors += [(f, f'unknown field "{f}"') for f in unknown_fields(schema, body)]
    body = apply_defaults(schema, prune(schema, body))
    errors += problems(schema, body)
    return {**{k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}, **body}, errors

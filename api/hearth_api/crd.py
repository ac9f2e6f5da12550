"""Generate the ModelDeployment CRD from the pydantic models in model_deployment.py.

Kubernetes wants a *structural* OpenAPI v3 schema: every node typed, no `$ref`, no `anyOf`
for nullability, `exclusiveMinimum` as a boolean. Pydantic emits JSON Schema 2020-12, so this
module inlines definitions and rewrites those constructs. Pure: dicts in, dicts out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from hearth_api import names
from hearth_api.model_deployment import ModelDeploymentSpec, ModelDeploymentStatus

CRD_FILENAME = f"{names.PLURAL}.{names.GROUP}.yaml"

# Keywords the apiextensions.k8s.io/v1 JSONSchemaProps accepts and we pass through.
_PASSTHROUGH = {
    "type",
    "description",
    "default",
    "enum",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "uniqueItems",
}

_DEFAULTED_OBJECTS = {"scaling", "warmup"}

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "GPU", "type": "string", "jsonPath": ".status.gpuClass"},
    {"name": "Node", "type": "string", "jsonPath": ".status.node"},
    # What the weights' headers say the model takes on a card (<none>: not read; gpu.vramGiB then).
    {"name": "VRAM (GiB)", "type": "number", "jsonPath": ".status.vram.totalGiB"},
    {"name": "ETA (s)", "type": "number", "jsonPath": ".status.warmup.estimateSeconds"},
    # The weights of a `uri` source in the cache, e.g. `4.4 GiB` (<none>: not yet, or a pvc source).
    {"name": "Cached", "type": "string", "jsonPath": ".status.cache.size"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one pydantic JSON-schema node into a structural Kubernetes schema node."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in node:
        # Optional[X] is anyOf [X, null]: Kubernetes expresses optional as "not required".
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf with {len(options)} types structurally")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return structural({**options[0], **rest}, defs)
    out = _keywords(node)
    out.update(_children(node, defs))
    if "type" not in out:
        raise ValueError(f"schema node has no type: {node}")
    if out["type"] == "array" and out.get("default") == []:
        del out["default"]  # an empty list default only adds noise to every object
    # Defaults of objects are filled in by their own properties' defaults.
    if out["type"] == "object" and "default" in out:
        del out["default"]
    return out


def _keywords(node: dict[str, Any]) -> dict[str, Any]:
    """The node's own keywords, in the forms Kubernetes accepts."""
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _PASSTHROUGH}
    if out.get("default", ...) is None:
        del out["default"]
    if "const" in node:
        out["enum"] = [node["const"]]
        out.setdefault("type", "string")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in node:
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = node[key]
            out[key] = True
    if out.get("format") == "date-time":
        out["type"] = "string"
    return out


def _children(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """What an object or array holds: properties, map values or items."""
    if "properties" in node:
        out: dict[str, Any] = {
            "type": "object",
            "properties": {k: structural(v, defs) for k, v in node["properties"].items()},
        }
        if node.get("additionalProperties") not in (None, False):
            out["x-kubernetes-preserve-unknown-fields"] = True
        return out
    if node.get("type") == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and extra and extra.get("type") != "object":
            return {"additionalProperties": structural(extra, defs)}
        return {"x-kubernetes-preserve-unknown-fields": True}
    if node.get("type") == "array":
        return {"items": structural(node.get("items", {}), defs)}
    return {}


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def spec_schema() -> dict[str, Any]:
    schema = model_schema(ModelDeploymentSpec)
    # modelSource: exactly one of pvc/uri — expressible structurally as oneOf over `required`.
    source = schema["properties"]["modelSource"]
    source["oneOf"] = [{"required": ["pvc", "path"]}, {"required": ["uri"]}]
    # Optional objects whose fields all have defaults default to {} so the API server fills
    # them in (`scaling: {minReplicas: 0, ...}`) on objects that leave them out.
    for name, prop in schema["properties"].items():
        if prop["type"] == "object" and not prop.get("required") and name in _DEFAULTED_OBJECTS:
            prop["default"] = {}
    return schema


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{names.PLURAL}.{names.GROUP}"},
        "spec": {
            "group": names.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": names.KIND,
                "listKind": f"{names.KIND}List",
                "plural": names.PLURAL,
                "singular": names.SINGULAR,
                "shortNames": list(names.SHORT_NAMES),
                "categories": ["hearth"],
            },
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A model served on a homelab GPU, warmed on demand.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": model_schema(ModelDeploymentStatus),
                            },
                        }
                    },
                }
            ],
        },
    }


def render_crd() -> str:
    header = "# Generated from api/hearth_api/model_deployment.py by `make crd`. Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def crd_paths(root: Path) -> list[Path]:
    """Where the one CRD file lives: the plain manifests and the chart."""
    return [root / "deploy" / "crds" / CRD_FILENAME, root / "charts" / "hearth" / "crds" / CRD_FILENAME]

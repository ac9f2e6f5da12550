"""The CRD file is generated from the types, is structural, and validates what they validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from hearth_api import crd

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", crd.crd_paths(ROOT), ids=lambda p: p.parts[-3])
def test_committed_crd_equals_generated(path: Path) -> None:
    assert path.read_text() == crd.render_crd(), (
        f"{path} is stale: run `hearth-operator crd` and commit the result"
    )


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    out = [(path, node)]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _walk(value, f"{path}[{i}]")
    return out


def _schema() -> dict[str, Any]:
    version = crd.build_crd()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def test_schema_is_structural() -> None:
    for path, node in _walk(_schema()):
        if not isinstance(node, dict):
            continue
        assert "$ref" not in node and "$defs" not in node and "anyOf" not in node, path
        if path.endswith(".oneOf") or ".oneOf[" in path:
            assert set(node) <= {"required"}, path  # value validations only inside oneOf
            continue
        if "properties" in node or "items" in node:
            assert "type" in node, path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True, path


def test_crd_shape_kubectl_relies_on() -> None:
    doc = crd.build_crd()
    version = doc["spec"]["versions"][0]
    assert doc["metadata"]["name"] == "modeldeployments.hearth.dev"
    assert doc["spec"]["names"]["shortNames"] == ["md"]
    assert version["subresources"] == {"status": {}}
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names == ["Model", "Phase", "GPU", "Node", "VRAM (GiB)", "ETA (s)", "Cached", "Age"]


def test_kubernetes_validate_accepts_the_crd() -> None:
    for path in crd.crd_paths(ROOT):
        doc = yaml.safe_load(path.read_text())
        kubernetes_validate.validate(doc, "1.32.0", strict=True)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_validate_against_the_crd_schema(path: Path) -> None:
    jsonschema.Draft4Validator(_schema()).validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"model": "x", "engine": "tgi", "gpu": {"vramGiB": 4}}, "'tgi' is not one of"),
        ({"model": "x", "engine": "sim", "gpu": {"vramGiB": 0}}, "0 is less than the minimum"),
        ({"engine": "sim", "gpu": {"vramGiB": 4}}, "'model' is a required property"),
    ],
)
def test_the_crd_schema_rejects_bad_specs(spec: dict[str, Any], needle: str) -> None:
    doc = {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "x"},
        "spec": spec,
    }
    with pytest.raises(jsonschema.ValidationError) as info:
        jsonschema.Draft4Validator(_schema()).validate(doc)
    assert needle in str(info.value.message), json.dumps(info.value.message)

"""The Deployment the operator renders for each real engine, kept as golden files that say, flag
by flag, where the engine's own documentation defines it. A change to a rendered manifest shows
up here as a diff to review; `HEARTH_UPDATE_GOLDEN=1 make unit` rewrites the files (their
comment headers are kept)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from hearth_api.model_deployment import ModelDeployment
from hearth_operator import children

GOLDEN = Path(__file__).parent / "golden"

SPECS: dict[str, dict[str, Any]] = {
    "vllm": {
        "model": "qwen",
        "aliases": ["chat"],
        "engine": "vllm",
        "modelSource": {"uri": "hf://Qwen/Qwen2.5-7B-Instruct-AWQ"},
        "gpu": {"class": "rtx3090", "vramGiB": 12},
        "concurrency": 16,
        "contextLength": 8192,
    },
    "llamacpp": {
        "model": "smollm2",
        "engine": "llamacpp",
        "modelSource": {"pvc": "hearth-models", "path": "SmolLM2-135M-Instruct.Q4_1.gguf"},
        "gpu": {"class": "rtx3070", "vramGiB": 1},
        "concurrency": 2,
        "contextLength": 2048,
    },
    "ollama": {
        "model": "mistral",
        "engine": "ollama",
        "modelSource": {"uri": "ollama://mistral:7b"},
        "gpu": {"class": "rtx3070", "vramGiB": 6},
        "port": 11434,
        "concurrency": 2,
        "contextLength": 4096,
    },
}


def rendered(engine: str) -> dict[str, Any]:
    md = ModelDeployment.model_validate(
        {"metadata": {"name": SPECS[engine]["model"], "namespace": "ai", "uid": "u"}, "spec": SPECS[engine]}
    )
    return dict(children.without_nulls(children.deployment(md, "gpu-node", 24, 1)))


@pytest.mark.parametrize("engine", sorted(SPECS))
def test_the_rendered_deployment_matches_its_golden_file(engine: str) -> None:
    path = GOLDEN / f"{engine}-deployment.yaml"
    manifest = rendered(engine)
    if os.environ.get("HEARTH_UPDATE_GOLDEN"):
        header = "".join(line for line in path.read_text().splitlines(keepends=True) if line.startswith("#"))
        path.write_text(header + yaml.safe_dump(manifest, sort_keys=False))
    assert manifest == yaml.safe_load(path.read_text()), f"{path.name} differs: review, then regenerate"


def test_every_flag_and_variable_in_a_golden_file_is_documented_in_its_header() -> None:
    for engine in SPECS:
        text = (GOLDEN / f"{engine}-deployment.yaml").read_text()
        header = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
        container = rendered(engine)["spec"]["template"]["spec"]["containers"][0]
        named = [a for a in container.get("args") or [] if a.startswith("-")]
        named += [e["name"] for e in container.get("env") or []]
        missing = [n for n in named if n not in header]
        assert not missing, f"{engine}: say where these are documented: {missing}"


@pytest.mark.parametrize("engine", sorted(SPECS))
def test_the_rendered_deployment_is_valid_kubernetes(engine: str) -> None:
    kubernetes_validate.validate(rendered(engine), "1.32.0", strict=True)

"""The ModelDeployment types: examples accepted, bad specs rejected with the field named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from hearth_api import model_deployment as api

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "deploy" / "examples").glob("*.yaml"))


def _spec(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": "small", "engine": "sim", "gpu": {"class": "rtx3070", "vramGiB": 6}}
    spec.update(over)
    return spec


def test_there_is_an_example_per_engine_and_sim_size() -> None:
    engines = {yaml.safe_load(p.read_text())["spec"]["engine"] for p in EXAMPLES}
    assert {"vllm", "llamacpp", "ollama", "sim"} <= engines
    assert {p.stem for p in EXAMPLES} >= {"sim-small", "sim-medium", "sim-big"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_validates(path: Path) -> None:
    md = api.ModelDeployment.model_validate(yaml.safe_load(path.read_text()))
    assert md.spec.model == md.name


def test_sim_examples_match_the_seed_sizes() -> None:
    by_name = {p.stem: api.ModelDeployment.model_validate(yaml.safe_load(p.read_text())) for p in EXAMPLES}
    sizes = {
        n: (
            by_name[f"sim-{n}"].spec.gpu.gpu_class,
            by_name[f"sim-{n}"].spec.gpu.vram_gib,
            by_name[f"sim-{n}"].spec.warmup.expected_seconds,
        )
        for n in ("small", "medium", "big")
    }
    assert sizes == {
        "small": (api.GpuClass.RTX3070, 6, 5),
        "medium": (api.GpuClass.RTX3090, 14, 15),
        "big": (api.GpuClass.RTX3090, 20, 30),
    }
    # The eviction demo needs medium and big not to fit on one 24 GiB card together.
    assert sizes["medium"][1] + sizes["big"][1] > 24


def test_defaults_fill_in_like_the_crd() -> None:
    spec = api.ModelDeploymentSpec.model_validate(_spec())
    assert spec.scaling.min_replicas == 0
    assert spec.scaling.max_replicas == 1
    assert spec.scaling.idle_timeout_seconds == 900
    assert spec.gpu.count == 1
    assert spec.port == 8000
    assert api.effective_concurrency(spec) == 16
    assert api.effective_readiness_path(spec) == "/health"
    assert spec.names == ["small"]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"engine": "tgi"}, "engine"),
        ({"gpu": {"class": "rtx3070", "vramGiB": 0}}, "gpu.vramGiB"),
        ({"gpu": {"class": "rtx3070", "vramGiB": 49}}, "gpu.vramGiB"),
        ({"gpu": {"class": "rtx4090", "vramGiB": 8}}, "gpu.class"),
        ({"model": "Llama_3"}, "model"),
        ({"aliases": ["ok", "Not OK"]}, "aliases.1"),
        ({"scaling": {"minReplicas": 2, "maxReplicas": 1}}, "scaling"),
        ({"port": 70000}, "port"),
        ({"modelSource": {"pvc": "models"}}, "modelSource"),
        ({"modelSource": {"pvc": "m", "path": "/x", "uri": "hf://a/b"}}, "modelSource"),
        ({"engine": "custom"}, "image"),
        ({"replicas": 3}, "replicas"),
    ],
)
def test_bad_specs_are_rejected_naming_the_field(over: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        api.ModelDeploymentSpec.model_validate(_spec(**over))
    text = str(info.value)
    assert field in text, text


def test_missing_model_is_rejected_naming_the_field() -> None:
    raw = _spec()
    del raw["model"]
    with pytest.raises(ValidationError) as info:
        api.ModelDeploymentSpec.model_validate(raw)
    assert info.value.errors()[0]["loc"] == ("model",)
    assert info.value.errors()[0]["type"] == "missing"


def test_status_round_trips_in_camel_case() -> None:
    raw = {
        "phase": "Warm",
        "node": "gpu-3090",
        "gpuClass": "rtx3090",
        "endpoints": ["http://127.0.0.5:8000"],
        "readyReplicas": 1,
        "replicas": 1,
        "loadingSince": "2026-11-25T10:00:00Z",
        "warmup": {"estimateSeconds": 14.5, "samples": [14.0, 15.0], "lastSeconds": 15.0},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Warm",
                "message": "",
                "lastTransitionTime": "2026-11-25T10:00:15Z",
            }
        ],
        "observedGeneration": 2,
    }
    status = api.ModelDeploymentStatus.model_validate(raw)
    assert status.phase is api.Phase.WARM
    dumped = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert dumped["warmup"] == {**raw["warmup"], "byGpuClass": {}}
    assert dumped["readyReplicas"] == 1
    assert dumped["gpuClass"] == "rtx3090"


def test_too_many_warmup_samples_are_rejected() -> None:
    with pytest.raises(ValidationError, match="samples"):
        api.WarmupStatus.model_validate({"samples": [1.0] * (api.MAX_WARMUP_SAMPLES + 1)})

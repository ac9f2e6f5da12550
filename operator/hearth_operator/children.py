"""The Deployment and Service the operator owns for each ModelDeployment. Pure: manifests in,
manifests out; the reconciler adds owner references and kube.Writer applies them.

Manifests are written as merge patches, so an optional field the operator owns is always
present — as null when unset — and a field it stops setting (a nodeSelector, a command) is
removed from the object rather than left behind.
"""

from __future__ import annotations

from typing import Any

from hearth_api.model_deployment import Engine, ModelDeployment, effective_readiness_path
from hearth_api.names import MD_LABEL, MODEL_LABEL, NVIDIA_GPU_RESOURCE
from hearth_operator import downloads, engines, security
from hearth_operator.downloads import WeightsCache

HOSTNAME_LABEL = "kubernetes.io/hostname"


def labels(md: ModelDeployment) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "hearth-model",
        "app.kubernetes.io/instance": md.name,
        "app.kubernetes.io/managed-by": "hearth-operator",
        MD_LABEL: md.name,
        MODEL_LABEL: md.spec.model,
    }


def selector(md: ModelDeployment) -> dict[str, str]:
    return {MD_LABEL: md.name}


def deployment(
    md: ModelDeployment,
    node: str | None,
    node_vram_gib: int | None,
    replicas: int,
    cache: WeightsCache | None = None,
) -> dict[str, Any]:
    spec = md.spec
    fetched = downloads.fetched_source(md, cache)
    cached = f"{engines.MODELS_MOUNT}/{fetched.target}" if fetched else None
    picked = md.status.vram.weights_file if md.status.vram else None
    if cached and fetched and fetched.kind == "hf" and not fetched.file and picked:
        if spec.engine is Engine.LLAMACPP:
            cached = f"{cached}/{picked}"  # llama.cpp's -m takes a file: the GGUF `files` picked
    container: dict[str, Any] = {
        "name": "engine",
        "image": engines.image(spec),
        # None: the image's own CMD (Ollama's `serve`)
        "args": engines.args(spec, node_vram_gib, cached, md.vram_gib) or None,
        "env": engines.env(spec, cached),
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": effective_readiness_path(spec), "port": spec.port},
            "periodSeconds": 2,
            "failureThreshold": 3,
            "timeoutSeconds": 2,
        },
        "resources": {"limits": {NVIDIA_GPU_RESOURCE: spec.gpu.count}},
        "securityContext": security.container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    container["command"] = engines.command(spec)  # None: the image's entrypoint
    container["startupProbe"] = engines.startup_probe(spec, cached)  # None: removed
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    source = spec.model_source
    if source is not None and source.pvc is not None:
        volumes.append(
            {"name": "models", "persistentVolumeClaim": {"claimName": source.pvc, "readOnly": True}}
        )
    # What the fetch Job left in the cache: read-only, but for Ollama, whose store it is (the
    # startup probe's `ollama cp` names the model there as clients call it).
    writes = fetched is not None and fetched.kind == "ollama"
    if fetched is not None and cache is not None:
        volumes.append(cache.volume("models", read_only=not writes))
    if len(volumes) > 1:
        container["volumeMounts"].append(
            {"name": "models", "mountPath": engines.MODELS_MOUNT, "readOnly": not writes}
        )
    pod_spec = security.locked_down(
        {"containers": [container], "volumes": volumes, "terminationGracePeriodSeconds": 10}
    )
    pod_spec["nodeSelector"] = {HOSTNAME_LABEL: node} if node else None
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": md.name, "namespace": md.namespace, "labels": labels(md)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(md)},
            # A consumer GPU cannot hold the old and the new replica at once.
            "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 2,
            "template": {"metadata": {"labels": labels(md)}, "spec": pod_spec},
        },
    }


def service(md: ModelDeployment) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": md.name, "namespace": md.namespace, "labels": labels(md)},
        "spec": {
            "type": "ClusterIP",
            "selector": selector(md),
            "ports": [{"name": "http", "port": md.spec.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def differs(wanted: Any, actual: Any) -> bool:
    """True when `actual` lacks or contradicts anything in `wanted` (server defaults may add
    more); a null in `wanted` means the field must be absent."""
    if isinstance(wanted, dict):
        return not isinstance(actual, dict) or any(differs(v, actual.get(k)) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (
            not isinstance(actual, list)
            or len(wanted) != len(actual)
            or any(differs(w, a) for w, a in zip(wanted, actual, strict=True))
        )
    return bool(wanted != actual)


def without_nulls(manifest: Any) -> Any:
    """The manifest as an object to create: nulls (absent fields, in a patch) left out."""
    if isinstance(manifest, dict):
        return {k: without_nulls(v) for k, v in manifest.items() if v is not None}
    if isinstance(manifest, list):
        return [without_nulls(v) for v in manifest]
    return manifest

"""The Deployment and Service the operator owns for each ModelDeployment. Pure: manifests in,
manifests out; handlers add owner references and apply them."""

from __future__ import annotations

from typing import Any

from hearth_operator import engines
from hearth_operator.api import NVIDIA_GPU_RESOURCE, ModelDeployment, effective_readiness_path

MD_LABEL = "hearth.dev/model-deployment"
MODEL_LABEL = "hearth.dev/model"
HOSTNAME_LABEL = "kubernetes.io/hostname"
RUN_AS = 1000


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
    md: ModelDeployment, node: str | None, node_vram_gib: int | None, replicas: int
) -> dict[str, Any]:
    spec = md.spec
    container: dict[str, Any] = {
        "name": "engine",
        "image": engines.image(spec),
        "args": engines.args(spec, node_vram_gib),
        "env": engines.env(spec),
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": effective_readiness_path(spec), "port": spec.port},
            "periodSeconds": 2,
            "failureThreshold": 3,
            "timeoutSeconds": 2,
        },
        "resources": {"limits": {NVIDIA_GPU_RESOURCE: spec.gpu.count}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    command = engines.command(spec)
    if command:
        container["command"] = command
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    source = spec.model_source
    if source is not None and source.pvc is not None:
        volumes.append(
            {"name": "models", "persistentVolumeClaim": {"claimName": source.pvc, "readOnly": True}}
        )
        container["volumeMounts"].append(
            {"name": "models", "mountPath": engines.MODELS_MOUNT, "readOnly": True}
        )
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": volumes,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 10,
    }
    if node:
        pod_spec["nodeSelector"] = {HOSTNAME_LABEL: node}
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

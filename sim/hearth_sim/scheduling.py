"""Pure decisions of the simulated control plane: pod names, template hashes, node choice,
Deployment status. No I/O; kubelet.py applies them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GPU = "nvidia.com/gpu"
Obj = dict[str, Any]


def template_hash(deployment: Obj) -> str:
    template = (deployment.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def gpu_request(pod_spec: Obj) -> int:
    total = 0
    for c in pod_spec.get("containers") or []:
        res = c.get("resources") or {}
        value = (res.get("limits") or {}).get(GPU) or (res.get("requests") or {}).get(GPU) or 0
        total += int(value)
    return total


def _affinity_ok(pod_spec: Obj, labels: dict[str, str]) -> bool:
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True

    def expr_ok(e: Obj) -> bool:
        value, op, values = labels.get(e["key"]), str(e.get("operator")), e.get("values") or []
        return {
            "In": value in values,
            "NotIn": value not in values,
            "Exists": value is not None,
            "DoesNotExist": value is None,
        }.get(op, False)

    return any(all(expr_ok(e) for e in t.get("matchExpressions") or []) for t in terms)


def choose_node(pod_spec: Obj, nodes: list[Obj], gpus_used: dict[str, int]) -> tuple[str | None, str]:
    """The first node that matches the pod's nodeSelector and affinity and has the GPUs it
    asks for free; otherwise None and the scheduler's reason."""
    if pod_spec.get("nodeName"):
        return str(pod_spec["nodeName"]), ""
    want = gpu_request(pod_spec)
    selector = pod_spec.get("nodeSelector") or {}
    matching = [
        n
        for n in nodes
        if all(((n["metadata"].get("labels") or {}).get(k) == v) for k, v in selector.items())
        and _affinity_ok(pod_spec, n["metadata"].get("labels") or {})
    ]
    for node in matching:
        name = node["metadata"]["name"]
        capacity = int(((node.get("status") or {}).get("allocatable") or {}).get(GPU, 0))
        if want == 0 or capacity - gpus_used.get(name, 0) >= want:
            return name, ""
    if not matching:
        return None, (
            f"0/{len(nodes)} nodes are available: {len(nodes)} node(s) didn't match "
            "Pod's node affinity/selector."
        )
    return None, f"0/{len(nodes)} nodes are available: {len(matching)} Insufficient {GPU}."


def deployment_status(deployment: Obj, pods: list[Obj]) -> Obj:
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    current_hash = template_hash(deployment)
    ready = [p for p in pods if is_ready(p)]
    updated = [
        p for p in pods if (p["metadata"].get("labels") or {}).get("pod-template-hash") == current_hash
    ]
    available = len(ready) >= desired
    return {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": len(pods),
        "updatedReplicas": len(updated),
        "readyReplicas": len(ready),
        "availableReplicas": len(ready),
        "unavailableReplicas": max(desired - len(ready), 0),
        "conditions": [
            {
                "type": "Available",
                "status": "True" if available else "False",
                "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "message": "Deployment has minimum availability."
                if available
                else "Deployment does not have minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable" if available else "ReplicaSetUpdated",
                "message": f"Pods of {deployment['metadata']['name']} are progressing.",
            },
        ],
    }


def is_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def controller_ref(api_version: str, kind: str, owner_meta: Obj) -> Obj:
    """The owner reference a controller puts on what it creates for `owner_meta`'s object."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner_meta["name"],
        "uid": owner_meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }

"""The operator's view of the cluster, read from kopf's indexes (or plain dicts in tests):
the models as placement sees them, name clashes between ModelDeployments, the owner reference
of their children, and why a spec fails the types. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from hearth_api.model_deployment import ModelDeployment, ModelDeploymentStatus, Phase
from hearth_api.names import LAST_ACTIVITY
from hearth_api.times import parse_time
from hearth_operator import placement
from hearth_operator.pods import PodView, pod_view


def key_of(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def validation_message(exc: ValidationError) -> str:
    """`spec.gpu.vramGiB: Input should be less than or equal to 48` — the field first."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "invalid spec: " + "; ".join(parts)


@dataclass
class Indexes:
    """kopf's live indexes (bound on the first handler call; kopf fills them before any), or
    plain dicts of sets in the tests."""

    nodes: Any = None  # name → {GpuNode}
    models: Any = None  # "ns/name" → {body dict}
    pods: Any = None  # "ns/name" → {pod dicts}
    jobs: Any = None  # "ns/name" → {its fetch Job}
    fetch_pods: Any = None  # "ns/name" → {the fetch Job's pods}

    def one(self, index: Any, key: str) -> Any:
        store = index.get(key) if index is not None else None
        return next(iter(store), None) if store else None

    def all(self, index: Any) -> list[Any]:
        return [v for store in (index or {}).values() for v in store]

    def pods_of(self, key: str) -> list[PodView]:
        store = (self.pods or {}).get(key) or []
        return [pod_view(p) for p in store]

    def fetch_pods_of(self, key: str) -> list[dict[str, Any]]:
        return list((self.fetch_pods or {}).get(key) or [])

    def gpu_nodes(self) -> list[placement.GpuNode]:
        return sorted(self.all(self.nodes), key=lambda n: n.name)

    def models_valid(self) -> list[ModelDeployment]:
        """Every ModelDeployment whose spec the types accept."""
        out = []
        for body in self.all(self.models):
            try:
                out.append(ModelDeployment.model_validate(body))
            except ValidationError:
                continue
        return out


def owner_reference(md_body: dict[str, Any]) -> dict[str, Any]:
    meta = md_body["metadata"]
    return {
        "apiVersion": md_body.get("apiVersion", "hearth.dev/v1alpha1"),
        "kind": md_body.get("kind", "ModelDeployment"),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def want(md: ModelDeployment) -> placement.Want:
    estimated = md.vram_estimate or 0
    basis = ""
    if estimated > (md.spec.gpu.vram_gib or 0):
        basis = f"the {estimated:g} GiB its weights' headers need (status.vram)"
    return placement.Want(
        key=md.key,
        basis=basis,
        gpu_class=md.spec.gpu.gpu_class,
        vram_gib=md.vram_gib,
        gpus=md.spec.gpu.count,
        priority=md.spec.priority,
        current_node=md.status.node,
    )


def residents(
    models: list[ModelDeployment],
    claims: dict[str, ModelDeploymentStatus],
    evicting: set[str] | dict[str, str],
) -> list[placement.Resident]:
    """The models as placement sees them: the operator's latest claim over what the watch
    brought back, and Warm models chosen for eviction already counted as Evicting."""
    out = []
    for md in models:
        status = claims.get(md.key, md.status)
        if md.key in evicting and status.phase is Phase.WARM:
            status = status.model_copy(update={"phase": Phase.EVICTING})
        out.append(
            placement.Resident(
                key=md.key,
                model=md.spec.model,
                node=status.node,
                phase=status.phase,
                vram_gib=md.model_copy(update={"status": status}).vram_gib,
                gpus=md.spec.gpu.count,
                priority=md.spec.priority,
                last_activity=parse_time(md.annotations.get(LAST_ACTIVITY)),
                idle_timeout=md.spec.scaling.idle_timeout_seconds,
                estimate=status.warmup.estimate_seconds or 0.0,
                pinned=md.spec.scaling.min_replicas > 0,
            )
        )
    return out


def name_holder(md: ModelDeployment, bodies: list[dict[str, Any]]) -> tuple[str, str, dict[str, Any]] | None:
    """The older ModelDeployment that already serves one of `md`'s names: (field, name, body)."""
    mine = (md.metadata.get("creationTimestamp", ""), md.name)
    for body in bodies:
        meta = body["metadata"]
        if meta.get("namespace", "default") != md.namespace or meta["name"] == md.name:
            continue
        spec = body.get("spec") or {}
        theirs = {spec.get("model"), *(spec.get("aliases") or [])}
        clash = sorted(theirs & set(md.spec.names))
        if clash and (meta.get("creationTimestamp", ""), meta["name"]) < mine:
            field_name = "spec.model" if md.spec.model in clash else "spec.aliases"
            return field_name, clash[0], body
    return None

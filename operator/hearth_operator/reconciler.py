"""Runs the plan for one ModelDeployment at a time: read the world from kopf's indexes, ask the
pure functions (placement, lifecycle) what to do, apply it, write status once if it changed.

Every trigger — the CR changed, one of its Pods changed, a node changed, an idle deadline
passed, a GPU was freed — is a `kick(key)` on the work queue. Placement decisions are serialised
by one lock and remembered (`claims`) until the watch brings them back, so two models never take
the same free GPU.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from hearth_api.model_deployment import ModelDeployment, ModelDeploymentStatus, Phase
from hearth_api.names import LAST_ACTIVITY
from hearth_api.times import parse_time
from hearth_operator import children, lifecycle, placement
from hearth_operator.metrics import OperatorMetrics
from hearth_operator.pods import PodView, pod_view
from hearth_operator.workqueue import WorkQueue

# Phases after which the GPU a model held may be free for those waiting.
RELEASING = (Phase.COLD, Phase.FAILED, Phase.UNSCHEDULABLE)


def key_of(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def validation_message(exc: ValidationError) -> str:
    """`spec.gpu.vramGiB: Input should be less than or equal to 48` — the field first."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "invalid spec: " + "; ".join(parts)


class ChildWriter(Protocol):
    """What the reconciler writes to the API (kube.Writer; a fake in the tests)."""

    async def ensure_service(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None: ...
    async def ensure_deployment(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None: ...
    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None: ...
    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...
    async def event(self, body: dict[str, Any], kind: str, reason: str, message: str) -> None: ...


@dataclass
class Indexes:
    """kopf's live indexes (bound on the first handler call; kopf fills them before any), or
    plain dicts of sets in the tests."""

    nodes: Any = None  # name → {GpuNode}
    models: Any = None  # "ns/name" → {body dict}
    pods: Any = None  # "ns/name" → {pod dicts}

    def one(self, index: Any, key: str) -> Any:
        store = index.get(key) if index is not None else None
        return next(iter(store), None) if store else None

    def all(self, index: Any) -> list[Any]:
        return [v for store in (index or {}).values() for v in store]


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


@dataclass
class Reconciler:
    writer: ChildWriter
    metrics: OperatorMetrics
    indexes: Indexes = field(default_factory=Indexes)
    claims: dict[str, ModelDeploymentStatus] = field(default_factory=dict)
    evictions: dict[str, str] = field(default_factory=dict)  # victim key → the model it makes room for
    waiting: set[str] = field(default_factory=set)  # keys that want a GPU and have none yet
    retry_backoff: float = 0.5  # seconds before the first retry of a failed reconcile; doubles
    queue: WorkQueue = field(init=False)
    _place_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.queue = WorkQueue(
            self.reconcile,
            on_error=lambda key: self.metrics.reconcile_errors.inc(),
            backoff=self.retry_backoff,
        )

    def kick(self, key: str) -> None:
        self.queue.kick(key)

    def kick_waiting(self) -> None:
        for key in list(self.waiting):
            self.kick(key)

    # --- one reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        body = self.indexes.one(self.indexes.models, key)
        if body is None:
            self._forget(key)
            return
        self.metrics.reconciles.inc()
        now = datetime.now(UTC)
        pods = self._pods(key)
        try:
            md = ModelDeployment.model_validate(body)
        except ValidationError as exc:
            await self._reject(key, body, pods, validation_message(exc), now)
            return
        prior = self.claims.get(key)
        if prior is not None:  # our own last write may not have come back through the watch yet
            md = md.model_copy(update={"status": prior})
        result = await self._decide(key, md, pods, now)
        if self.indexes.one(self.indexes.models, key) is None:
            return  # deleted meanwhile: its children go with it (owner references)
        owner = owner_reference(body)
        # Children follow the plan even for a failed spec (its replicas are then 0): a name
        # clash that appears later must stop what already runs.
        await self.writer.ensure_service(children.service(md), owner)
        node = result.node
        await self.writer.ensure_deployment(
            children.deployment(
                md, node.name if node else None, node.vram_gib if node else None, result.replicas
            ),
            owner,
        )
        await self._write_status(body, md, result)
        for victim in result.evict:
            self.kick(victim)
        phase = result.status.phase
        if phase in RELEASING and md.status.phase not in (None, phase):
            self.kick_waiting()  # a GPU may have been freed
        self.queue.at(key, lifecycle.idle_deadline(md.model_copy(update={"status": result.status})))

    async def _decide(
        self, key: str, md: ModelDeployment, pods: list[PodView], now: datetime
    ) -> lifecycle.Plan:
        """Place (if it needs a node) and plan, under the one lock, and remember the claim."""
        failure = self._name_conflict(md)
        held_name = md.status.node if md.status.phase in (Phase.LOADING, Phase.WARM) else None
        held = self.indexes.one(self.indexes.nodes, held_name) if held_name else None
        async with self._place_lock:
            decision = None
            if (
                failure is None
                and key not in self.evictions
                and held is None
                and lifecycle.wanted(md, pods, now)
            ):
                decision = placement.place(self._want(md), self._nodes(), self._residents(now), now)
            result = lifecycle.plan(
                lifecycle.Inputs(
                    md=md,
                    pods=pods,
                    now=now,
                    node=held,
                    decision=decision,
                    evicted_for=self.evictions.get(key),
                    failure=failure,
                )
            )
            self.claims[key] = result.status
            for victim in result.evict:
                self.evictions[victim] = md.spec.model
                self.metrics.evictions.labels(model=victim.split("/", 1)[1]).inc()
        phase = result.status.phase
        if phase is Phase.UNSCHEDULABLE or (phase is Phase.LOADING and result.node is None):
            self.waiting.add(key)
        else:
            self.waiting.discard(key)
        if phase is Phase.COLD:
            self.evictions.pop(key, None)
        return result

    async def _reject(
        self, key: str, body: dict[str, Any], pods: list[PodView], message: str, now: datetime
    ) -> None:
        """A spec the types refuse: Failed with the field named, and whatever runs is stopped."""
        try:
            previous = ModelDeploymentStatus.model_validate(body.get("status") or {})
        except ValidationError:
            previous = ModelDeploymentStatus()
        result = lifecycle.plan_invalid_spec(previous, pods, body["metadata"].get("generation"), message, now)
        self.claims[key] = result.status
        self.waiting.discard(key)
        meta = body["metadata"]
        await self.writer.scale_deployment(meta.get("namespace", "default"), meta["name"], 0)
        await self._write_status(body, None, result)
        self.queue.at(key, None)

    def _forget(self, key: str) -> None:
        """Deleted: whatever GPU it held is free for those waiting."""
        self.claims.pop(key, None)
        self.waiting.discard(key)
        self.evictions.pop(key, None)
        self.queue.forget(key)
        self.kick_waiting()

    # --- views of the world ------------------------------------------------------------------

    def _pods(self, key: str) -> list[PodView]:
        store = (self.indexes.pods or {}).get(key) or []
        return [pod_view(p) for p in store]

    def _nodes(self) -> list[placement.GpuNode]:
        return sorted(self.indexes.all(self.indexes.nodes), key=lambda n: n.name)

    def _want(self, md: ModelDeployment) -> placement.Want:
        return placement.Want(
            key=md.key,
            gpu_class=md.spec.gpu.gpu_class,
            vram_gib=md.spec.gpu.vram_gib,
            gpus=md.spec.gpu.count,
            priority=md.spec.priority,
            current_node=md.status.node,
        )

    def _residents(self, now: datetime) -> list[placement.Resident]:
        out = []
        for body in self.indexes.all(self.indexes.models):
            try:
                md = ModelDeployment.model_validate(body)
            except ValidationError:
                continue
            status = self.claims.get(md.key, md.status)
            if md.key in self.evictions and status.phase is Phase.WARM:
                status = status.model_copy(update={"phase": Phase.EVICTING})
            out.append(
                placement.Resident(
                    key=md.key,
                    model=md.spec.model,
                    node=status.node,
                    phase=status.phase,
                    vram_gib=md.spec.gpu.vram_gib,
                    gpus=md.spec.gpu.count,
                    priority=md.spec.priority,
                    last_activity=parse_time(md.annotations.get(LAST_ACTIVITY)),
                    idle_timeout=md.spec.scaling.idle_timeout_seconds,
                    estimate=status.warmup.estimate_seconds or 0.0,
                    pinned=md.spec.scaling.min_replicas > 0,
                )
            )
        return out

    def _name_conflict(self, md: ModelDeployment) -> str | None:
        """The older ModelDeployment keeps a name; the newer one fails, naming the field."""
        mine = (md.metadata.get("creationTimestamp", ""), md.name)
        for body in self.indexes.all(self.indexes.models):
            meta = body["metadata"]
            if meta.get("namespace", "default") != md.namespace or meta["name"] == md.name:
                continue
            spec = body.get("spec") or {}
            theirs = {spec.get("model"), *(spec.get("aliases") or [])}
            clash = sorted(theirs & set(md.spec.names))
            if clash and (meta.get("creationTimestamp", ""), meta["name"]) < mine:
                field_name = "spec.model" if md.spec.model in clash else "spec.aliases"
                return f"{field_name}: {clash[0]!r} is already served by modeldeployment/{meta['name']}"
        return None

    # --- status ------------------------------------------------------------------------------

    async def _write_status(
        self, body: dict[str, Any], md: ModelDeployment | None, result: lifecycle.Plan
    ) -> None:
        """Write status only when it changed, then its Events and the warmup it measured."""
        status = result.status
        new = status.model_dump(by_alias=True, mode="json")
        try:
            old = ModelDeploymentStatus.model_validate(body.get("status") or {}).model_dump(
                by_alias=True, mode="json"
            )
        except ValidationError:
            old = None
        if new != old:
            meta = body["metadata"]
            try:
                await self.writer.patch_status(meta.get("namespace", "default"), meta["name"], new)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                return  # deleted meanwhile
        for kind, reason, message in result.events:
            await self.writer.event(body, kind, reason, message)
        measured = status.warmup.last_seconds
        if md is not None and measured is not None and status.warmup.samples != md.status.warmup.samples:
            self.metrics.warmup.labels(model=md.spec.model, gpu_class=status.gpu_class or "").observe(
                measured
            )
        self._count_phases()

    def _count_phases(self) -> None:
        counts = {p.value: 0 for p in Phase}
        for status in self.claims.values():
            if status.phase is not None:
                counts[status.phase.value] += 1
        for phase, n in counts.items():
            self.metrics.phases.labels(phase=phase).set(n)

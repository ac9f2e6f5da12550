"""Runs the plan for one ModelDeployment at a time: read the world from kopf's indexes, ask the
pure functions (placement, lifecycle) what to do, apply it, write status once if it changed.

Every trigger — the CR changed, one of its Pods changed, a node changed, an idle deadline
passed, a GPU was freed — is a `kick(key)`; kicks of a key already reconciling coalesce into one
more run. Placement decisions are serialised by one lock and remembered (`claims`) until the
watch brings them back, so two models never take the same free GPU.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from hearth_operator import children, lifecycle, placement
from hearth_operator.api import LAST_ACTIVITY, ModelDeployment, ModelDeploymentStatus, Phase, parse_time
from hearth_operator.kube import Writer, owner_reference
from hearth_operator.metrics import OperatorMetrics

log = logging.getLogger("hearth.operator")


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
    """kopf's live indexes (bound on the first handler call; kopf fills them before any)."""

    nodes: Any = None  # name → {GpuNode}
    models: Any = None  # "ns/name" → {body dict}
    pods: Any = None  # "ns/name" → {pod dicts}

    def one(self, index: Any, key: str) -> Any:
        store = index.get(key) if index is not None else None
        return next(iter(store), None) if store else None

    def all(self, index: Any) -> list[Any]:
        return [v for store in (index or {}).values() for v in store]


@dataclass
class Reconciler:
    writer: Writer
    metrics: OperatorMetrics
    indexes: Indexes = field(default_factory=Indexes)
    claims: dict[str, ModelDeploymentStatus] = field(default_factory=dict)
    evictions: dict[str, str] = field(default_factory=dict)  # victim key → the model it makes room for
    waiting: set[str] = field(default_factory=set)  # keys that want a GPU and have none yet
    _dirty: set[str] = field(default_factory=set)
    _running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _place_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _deadlines: list[tuple[datetime, str]] = field(default_factory=list)
    _deadline_changed: asyncio.Event = field(default_factory=asyncio.Event)

    # --- triggers ----------------------------------------------------------------------------

    def kick(self, key: str) -> None:
        if key in self._running:
            self._dirty.add(key)
            return
        self._running[key] = asyncio.create_task(self._loop(key), name=f"reconcile {key}")

    async def _loop(self, key: str) -> None:
        try:
            while True:
                self._dirty.discard(key)
                try:
                    await self.reconcile(key)
                except Exception:
                    self.metrics.reconcile_errors.inc()
                    log.exception("reconciling %s failed; retrying on its next event", key)
                    await asyncio.sleep(1.0)  # back off before the retry below
                    self._dirty.add(key)
                if key not in self._dirty:
                    return
        finally:
            self._running.pop(key, None)

    async def run_deadlines(self) -> None:
        """Wake each model's reconcile when its idle deadline passes (scale to zero)."""
        while True:
            self._deadline_changed.clear()
            timeout = None
            if self._deadlines:
                timeout = max((self._deadlines[0][0] - datetime.now(UTC)).total_seconds(), 0)
            try:
                await asyncio.wait_for(self._deadline_changed.wait(), timeout)
            except TimeoutError:
                pass
            now = datetime.now(UTC)
            while self._deadlines and self._deadlines[0][0] <= now:
                _, key = heapq.heappop(self._deadlines)
                self.kick(key)

    def _schedule(self, key: str, when: datetime | None) -> None:
        if when is not None:
            heapq.heappush(self._deadlines, (when, key))
            self._deadline_changed.set()

    # --- one reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        body = self.indexes.one(self.indexes.models, key)
        if body is None:  # deleted: whatever GPU it held is free for those waiting
            self.claims.pop(key, None)
            self.waiting.discard(key)
            self.evictions.pop(key, None)
            self.kick_waiting()
            return
        self.metrics.reconciles.inc()
        now = datetime.now(UTC)
        pods = self._pods(key)
        try:
            md = ModelDeployment.model_validate(body)
        except ValidationError as exc:
            await self._write_invalid(body, validation_message(exc))
            return
        failure = self._name_conflict(md)
        prior = self.claims.get(key)
        if prior is not None:  # our own last write may not have come back through the watch yet
            md = md.model_copy(update={"status": prior})
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

        owner = owner_reference(body)
        if self.indexes.one(self.indexes.models, key) is None:
            return  # deleted meanwhile: its children go with it (owner references)
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
        await self._write_status(body, md, result.status, result.events)
        for victim in result.evict:
            self.kick(victim)
        if phase in (Phase.COLD, Phase.FAILED, Phase.UNSCHEDULABLE) and md.status.phase not in (None, phase):
            self.kick_waiting()  # a GPU may have been freed
        self._schedule(key, lifecycle.idle_deadline(md.model_copy(update={"status": result.status})))

    def kick_waiting(self) -> None:
        for key in list(self.waiting):
            self.kick(key)

    # --- views of the world ------------------------------------------------------------------

    def _pods(self, key: str) -> list[lifecycle.PodView]:
        store = (self.indexes.pods or {}).get(key) or []
        return [lifecycle.pod_view(p) for p in store]

    def _nodes(self) -> list[placement.GpuNode]:
        return sorted(self.indexes.all(self.indexes.nodes), key=lambda n: n.name)

    def _want(self, md: ModelDeployment) -> placement.Want:
        return placement.Want(
            key=key_of(md.namespace, md.name),
            gpu_class=md.spec.gpu.gpu_class,
            vram_gib=md.spec.gpu.vram_gib,
            gpus=md.spec.gpu.count,
            priority=md.spec.priority,
            current_node=md.status.node,
        )

    def _residents(self, now: datetime) -> list[placement.Resident]:
        out = []
        for body in self.indexes.all(self.indexes.models):
            key = key_of(body["metadata"].get("namespace", "default"), body["metadata"]["name"])
            try:
                md = ModelDeployment.model_validate(body)
            except ValidationError:
                continue
            status = self.claims.get(key, md.status)
            if key in self.evictions and status.phase is Phase.WARM:
                status = status.model_copy(update={"phase": Phase.EVICTING})
            out.append(
                placement.Resident(
                    key=key,
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
        self,
        body: dict[str, Any],
        md: ModelDeployment,
        status: ModelDeploymentStatus,
        events: list[tuple[str, str, str]],
    ) -> None:
        new = status.model_dump(by_alias=True, mode="json")
        old = ModelDeploymentStatus.model_validate(body.get("status") or {}).model_dump(
            by_alias=True, mode="json"
        )
        if new != old:
            meta = body["metadata"]
            try:
                await self.writer.patch_status(meta["namespace"], meta["name"], new)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                return
        for kind, reason, message in events:
            await self.writer.event(body, kind, reason, message)
        if (
            status.warmup.last_seconds is not None
            and status.warmup.last_seconds != md.status.warmup.last_seconds
        ):
            if status.warmup.samples != md.status.warmup.samples:
                self.metrics.warmup.labels(model=md.spec.model, gpu_class=status.gpu_class or "").observe(
                    status.warmup.last_seconds
                )
        self._count_phases()

    async def _write_invalid(self, body: dict[str, Any], message: str) -> None:
        now = datetime.now(UTC)
        prev = body.get("status") or {}
        status = {
            **prev,
            "phase": Phase.FAILED.value,
            "message": message,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "InvalidSpec",
                    "message": message,
                    "lastTransitionTime": lifecycle.rfc3339(now),
                }
            ],
            "observedGeneration": body["metadata"].get("generation"),
        }
        if prev.get("message") != message or prev.get("phase") != Phase.FAILED.value:
            meta = body["metadata"]
            await self.writer.patch_status(meta["namespace"], meta["name"], status)
            await self.writer.event(body, "Warning", "InvalidSpec", message)

    def _count_phases(self) -> None:
        counts = {p.value: 0 for p in Phase}
        for status in self.claims.values():
            if status.phase is not None:
                counts[status.phase.value] += 1
        for phase, n in counts.items():
            self.metrics.phases.labels(phase=phase).set(n)

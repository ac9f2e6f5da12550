"""Runs the plan for one ModelDeployment at a time: read the world from kopf's indexes, ask the
pure functions (placement, lifecycle) what to do, apply it, write status once if it changed.

Every trigger — the CR changed, one of its Pods changed, a node changed, an idle deadline
passed, a GPU was freed — is a `kick(key)` on the work queue. Placement decisions are serialised
by one lock and remembered (`claims`) until the watch brings them back, so two models never take
the same free GPU.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes_asyncio.client.exceptions import ApiException
from pydantic import ValidationError

from hearth_api.model_deployment import ModelDeployment, ModelDeploymentStatus, Phase, Reason, estimable
from hearth_operator import downloads, lifecycle, vram, world
from hearth_operator.downloads import Fetch, WeightsCache
from hearth_operator.headers import HeaderError, HeaderReader, Read
from hearth_operator.metrics import OperatorMetrics
from hearth_operator.pods import PodView
from hearth_operator.workqueue import WorkQueue


class ChildWriter(Protocol):
    """What the reconciler writes to the API (kube.Writer; a fake in the tests)."""

    async def ensure_service(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None: ...
    async def ensure_deployment(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None: ...
    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None: ...
    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None: ...
    async def event(self, body: dict[str, Any], kind: str, reason: str, message: str) -> None: ...
    async def ensure_job(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None: ...
    async def delete_job(self, namespace: str, name: str) -> None: ...


async def _no_progress(pod_ip: str) -> dict[str, Any] | None:
    return None


@dataclass
class Reconciler:
    writer: ChildWriter
    metrics: OperatorMetrics
    indexes: world.Indexes = field(default_factory=world.Indexes)
    claims: dict[str, ModelDeploymentStatus] = field(default_factory=dict)
    evictions: dict[str, str] = field(default_factory=dict)  # victim key → the model it makes room for
    waiting: set[str] = field(default_factory=set)  # keys that want a GPU and have none yet
    retry_backoff: float = 0.5  # seconds before the first retry of a failed reconcile; doubles
    load_timeout: float = 600.0  # settings.load_timeout_seconds
    transient: Callable[[Exception], bool] = lambda exc: False  # kube.transient: retried quietly
    cache: WeightsCache | None = None  # where Hearth downloads `uri` sources; None: engines fetch
    read_progress: Callable[[str], Awaitable[dict[str, Any] | None]] = _no_progress  # a fetch pod's
    headers: HeaderReader | None = None  # reads the weights' headers for the VRAM estimate; None: never
    shapes: dict[str, Read | HeaderError] = field(default_factory=dict)  # headers read, by source
    queue: WorkQueue = field(init=False)
    _place_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.queue = WorkQueue(
            self.reconcile,
            on_error=lambda key: self.metrics.reconcile_errors.inc(),
            backoff=self.retry_backoff,
            transient=self.transient,
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
        pods = self.indexes.pods_of(key)
        try:
            md = ModelDeployment.model_validate(body)
        except ValidationError as exc:
            await self._reject(key, body, pods, world.validation_message(exc), now)
            return
        prior = self.claims.get(key)
        if prior is not None:  # our own last write may not have come back through the watch yet
            md = md.model_copy(update={"status": prior})
        fetch = await self._fetch(key, md)
        md, estimate = await self._estimate(md, fetch)
        inputs = lifecycle.Inputs(
            md=md,
            pods=pods,
            now=now,
            node=self.indexes.one(self.indexes.nodes, md.status.node) if md.status.node else None,
            evicted_for=self.evictions.get(key),
            holder=world.name_holder(md, self.indexes.all(self.indexes.models)),
            load_timeout=self.load_timeout,
            fetch=fetch,
            job=self.indexes.one(self.indexes.jobs, key),
            cache=self.cache,
            estimate=estimate,
        )
        result = await self._plan(key, inputs)
        if self.indexes.one(self.indexes.models, key) is None:
            return  # deleted meanwhile: its children go with it (owner references)
        await self._apply(key, body, md, result)

    async def _plan(self, key: str, inputs: lifecycle.Inputs) -> lifecycle.Plan:
        """Plan under the one lock, placing against the latest claims, and remember the claim
        and the evictions it asks for until the watch brings them back."""
        async with self._place_lock:
            cluster = lifecycle.Cluster(
                nodes=tuple(self.indexes.gpu_nodes()),
                residents=lambda: world.residents(self.indexes.models_valid(), self.claims, self.evictions),
            )
            result = lifecycle.plan(replace(inputs, cluster=cluster))
            self.claims[key] = result.status
            for victim in result.evict:
                self.evictions[victim] = inputs.md.spec.model
                self.metrics.evictions.labels(model=victim.split("/", 1)[1]).inc()
        if result.wants_gpu:
            self.waiting.add(key)
        else:
            self.waiting.discard(key)
        if result.eviction_over:
            self.evictions.pop(key, None)
        return result

    async def _apply(
        self, key: str, body: dict[str, Any], md: ModelDeployment, result: lifecycle.Plan
    ) -> None:
        """Do what the plan says, in order: the fetch Job, the children, status, Events, kicks."""
        owner = world.owner_reference(body)
        if result.job_to_delete is not None:
            await self.writer.delete_job(md.namespace, result.job_to_delete)
        if result.job_to_create is not None:
            await self.writer.ensure_job(result.job_to_create, owner)
        if result.service is not None:
            await self.writer.ensure_service(result.service, owner)
        if result.deployment is not None:
            await self.writer.ensure_deployment(result.deployment, owner)
        await self._write_status(body, md, result)
        for other, (kind, reason, message) in result.notices:
            await self.writer.event(other, kind, reason, message)
        for victim in result.evict:
            self.kick(victim)
        if result.frees_gpu:
            self.kick_waiting()  # a GPU may have been freed
        self.queue.at(key, result.due)

    async def _estimate(
        self, md: ModelDeployment, fetch: Fetch | None = None
    ) -> tuple[ModelDeployment, vram.Verdict | None]:
        """The model with status.vram estimated for its spec as it is now, and the verdict on it.
        Headers are read once per source (kept in status.vram.shape, so a restart or a change of
        context needs no network); a source that did not answer is asked again on a later reconcile."""
        if self.headers is None or not estimable(md.spec):
            return _with_vram(md, None), None
        source = vram.source_key(md)
        kept = md.status.vram
        read: Read | HeaderError | None = None
        if fetch is not None and fetch.state == "done" and fetch.shape is not None:
            if fetch.shape.format == vram.expected_format(md):  # recomputed from the downloaded files
                uri = md.spec.model_source.uri if md.spec.model_source else ""
                read = Read(fetch.shape, f"the downloaded files of {uri}", fetch.weights_file)
        if read is None and kept is not None and kept.uri == source and kept.shape is not None:
            if kept.shape.format == vram.expected_format(md):
                read = Read(kept.shape, kept.source, kept.weights_file)
        memo = f"{md.spec.engine.value} {source}"
        if read is None:
            read = self.shapes.get(memo)
        if read is None:
            try:
                read = await self.headers.read(md.spec)
            except HeaderError as exc:
                read = exc
            if not (isinstance(read, HeaderError) and read.reason is Reason.HEADERS_UNREACHABLE):
                self.shapes[memo] = read
        if isinstance(read, HeaderError):
            return _with_vram(md, None), vram.unreadable(read.reason, read.message, md.spec.gpu.vram_gib)
        try:
            estimated = vram.estimate(md, read.shape, read.source, read.weights_file)
        except ValueError as exc:  # engine args the estimate cannot read
            return _with_vram(md, None), vram.unreadable(
                Reason.UNREADABLE_WEIGHTS, str(exc), md.spec.gpu.vram_gib
            )
        md = _with_vram(md, estimated)
        return md, vram.verdict(md)

    async def _fetch(self, key: str, md: ModelDeployment) -> Fetch | None:
        """The download of the model's weights as its Job shows it, with the fetch's progress."""
        fetched = downloads.fetched_source(md, self.cache)
        if fetched is None or downloads.cached(md):
            return None
        fetch = downloads.view(
            self.indexes.one(self.indexes.jobs, key), self.indexes.fetch_pods_of(key), fetched.uri
        )
        if fetch.state == "running" and fetch.pod_ip:
            report = await self.read_progress(fetch.pod_ip)
            if report is not None:
                fetch = replace(fetch, progress=downloads.progress(report))
        return fetch

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


def _with_vram(md: ModelDeployment, estimated: Any) -> ModelDeployment:
    if md.status.vram == estimated:
        return md
    return md.model_copy(update={"status": md.status.model_copy(update={"vram": estimated})})

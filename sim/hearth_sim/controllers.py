"""The control plane's controllers, as the homelab plays them through the API like the real
ones: the Deployment controller (Recreate: a GPU cannot hold the old and the new replica at
once), the Job controller (its decisions in jobs.py), the scheduler (nodeSelector/affinity and
free `nvidia.com/gpu`, scheduling.py) and a volume provisioner that binds every claim. The
kubelet (kubelet.py) runs the pods they make."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import httpx

from hearth_sim import jobs, rollout, scheduling
from hearth_sim.apiserver.resources import now_rfc3339
from hearth_sim.kube import ApiError, Kube
from hearth_sim.node import KubeletConfig
from hearth_sim.recorder import Recorder

log = logging.getLogger("hearth.sim.controllers")
Obj = dict[str, Any]
Key = tuple[str, str]  # namespace, name


class Controllers:
    def __init__(
        self,
        kube: Kube,
        config: KubeletConfig,
        pods: dict[str, Obj],
        recorder: Recorder,
        start_pod: Callable[[Obj], Awaitable[None]],
    ) -> None:
        self.kube, self.config, self.recorder = kube, config, recorder
        self.pods = pods  # uid → pod as last seen: the kubelet's own cache, shared
        self.start_pod = start_pod  # the kubelet runs a pod the scheduler bound
        self.deployments: dict[tuple[str, str], Obj] = {}
        self._dirty: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.jobs: dict[tuple[str, str], Obj] = {}
        self._dirty_jobs: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._job_due: dict[tuple[str, str], float] = {}  # when a Job's next pod may start (back-off)
        self._lock = asyncio.Lock()

    def loops(self) -> list[Coroutine[Any, Any, None]]:
        """What runs for as long as the homelab does: the watches and the two work loops."""
        return [
            self._watch("apps/v1", "deployments", self.deployments, self._dirty),
            self._work("deployment", self._dirty, self._reconcile),
            self._watch("batch/v1", "jobs", self.jobs, self._dirty_jobs),
            self._work("job", self._dirty_jobs, self._reconcile_job),
            self._bind_claims(),
        ]

    def pod_changed(self, pod: Obj, deleted: bool) -> None:
        """A pod's owner looks again; a deleted pod's GPU is free, so pods waiting for one do too."""
        if deleted:
            for waiting in list(self.pods.values()):
                owner = owner_of(waiting) if not waiting["spec"].get("nodeName") else None
                if owner:
                    self._dirty.put_nowait(owner)
        owner = owner_of(pod)
        if owner:
            self._dirty.put_nowait(owner)
        job = owner_of(pod, "Job")
        if job:
            self._dirty_jobs.put_nowait(job)

    async def _watch(self, api: str, plural: str, cache: dict[Key, Obj], dirty: asyncio.Queue[Key]) -> None:
        """Keep `cache` to the API's objects of a kind; each change makes its key dirty."""
        async for kind, obj in self.kube.watch(api, plural):
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            if kind == "DELETED":
                cache.pop(key, None)
            else:
                cache[key] = obj
            dirty.put_nowait(key)

    async def _work(
        self, what: str, dirty: asyncio.Queue[Key], reconcile: Callable[[Key], Awaitable[None]]
    ) -> None:
        """Reconcile dirty keys one at a time (under the one lock all controllers share)."""
        while True:
            key = await dirty.get()
            try:
                async with self._lock:
                    await reconcile(key)
            except (ApiError, httpx.HTTPError) as exc:
                # Requeued, as a controller does: nothing else would bring the object back
                # (after an API server outage, the resumed watch replays no change for it).
                log.warning("reconciling %s %s/%s failed: %s; retrying in 1 s", what, *key, exc)
                asyncio.get_running_loop().call_later(1.0, dirty.put_nowait, key)

    async def _reconcile(self, key: tuple[str, str]) -> None:
        deployment = self.deployments.get(key)
        if deployment is None:
            return  # its pods go with it (owner references)
        ns, name = key
        uid = deployment["metadata"]["uid"]
        owned = [
            p
            for p in self.pods.values()
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
            and not p["metadata"].get("deletionTimestamp")
        ]
        current = scheduling.template_hash(deployment)
        stale = [p for p in owned if (p["metadata"].get("labels") or {}).get("pod-template-hash") != current]
        fresh = [p for p in owned if p not in stale]
        todo = rollout.step(deployment, fresh, stale)
        for pod in todo.delete:
            with contextlib.suppress(ApiError):
                await self.kube.delete("v1", "pods", ns, pod["metadata"]["name"])
                self.pods.pop(pod["metadata"]["uid"], None)
        for _ in range(todo.create):
            await self._create_pod(deployment, current)
        await self._schedule_pending()
        pods = [
            p
            for p in self.pods.values()
            if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
        ]
        status = scheduling.deployment_status(deployment, pods)
        if status != deployment.get("status"):
            with contextlib.suppress(ApiError):
                await self.kube.patch("apps/v1", "deployments", ns, name, {"status": status}, sub="status")

    async def _create_pod(self, deployment: Obj, template_hash: str) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        template = spec.get("template") or {}
        labels = {**(template.get("metadata") or {}).get("labels", {}), "pod-template-hash": template_hash}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{template_hash}-{secrets.token_hex(3)[:5]}",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": (template.get("metadata") or {}).get("annotations", {}),
                "ownerReferences": [scheduling.controller_ref("apps/v1", "Deployment", meta)],
            },
            "spec": dict(template.get("spec") or {}),
            "status": {"phase": "Pending"},
        }
        created = await self.kube.create("v1", "pods", meta["namespace"], pod)
        self.pods[created["metadata"]["uid"]] = created

    # --- the volume provisioner ---------------------------------------------------------------

    async def _bind_claims(self) -> None:
        """Bind every PersistentVolumeClaim at once, as a dynamic provisioner (k3s's local-path)
        does: its volume is a folder under volumes_dir, made when a pod mounts it. Helm's `--wait`
        and kubectl wait for Bound."""
        async for kind, claim in self.kube.watch("v1", "persistentvolumeclaims"):
            if kind == "DELETED" or (claim.get("status") or {}).get("phase") == "Bound":
                continue
            spec, meta = claim.get("spec") or {}, claim["metadata"]
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            status = {
                "phase": "Bound",
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "capacity": {"storage": storage},
            }
            with contextlib.suppress(ApiError):
                await self.kube.patch(
                    "v1",
                    "persistentvolumeclaims",
                    meta["namespace"],
                    meta["name"],
                    {"status": status},
                    sub="status",
                )

    # --- the Job controller (decisions in jobs.py) ---------------------------------------------

    async def _reconcile_job(self, key: tuple[str, str]) -> None:
        job = self.jobs.get(key)
        if job is None:
            return
        uid = job["metadata"]["uid"]
        owned = sorted(
            (
                p
                for p in self.pods.values()
                if any(r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or [])
            ),
            key=lambda p: p["metadata"]["creationTimestamp"],
        )
        result = jobs.verdict(job, owned, now_rfc3339())
        if result.status != job.get("status"):
            with contextlib.suppress(ApiError):
                updated = await self.kube.patch(
                    "batch/v1", "jobs", *key, {"status": result.status}, sub="status"
                )
                self.jobs[key] = updated
        if not result.start_pod:
            return
        loop = asyncio.get_running_loop()
        due = self._job_due.get(key)
        if due is None:  # back-off after a failed pod, as the Job controller does: 10 s, 20 s, …
            delay = (
                min(self.config.backoff_base * 2 ** (result.failures - 1), 360.0) if result.failures else 0.0
            )
            due = self._job_due[key] = loop.time() + delay
            loop.call_later(delay, self._dirty_jobs.put_nowait, key)
        if loop.time() >= due:
            del self._job_due[key]
            pod = jobs.pod_from(job, secrets.token_hex(3)[:5])
            created = await self.kube.create("v1", "pods", key[0], pod)
            self.pods[created["metadata"]["uid"]] = created
            await self._schedule_pending()

    async def _schedule_pending(self) -> None:
        pending = [
            p
            for p in self.pods.values()
            if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
        ]
        if not pending:
            return
        nodes = (await self.kube.list("v1", "nodes")).get("items", [])
        used: dict[str, int] = {}
        for p in self.pods.values():
            if p["spec"].get("nodeName"):
                used[p["spec"]["nodeName"]] = used.get(p["spec"]["nodeName"], 0) + scheduling.gpu_request(
                    p["spec"]
                )
        for pod in sorted(pending, key=lambda p: p["metadata"]["creationTimestamp"]):
            node, reason = scheduling.choose_node(pod["spec"], nodes, used)
            ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
            if node is None:
                conds = [
                    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": reason}
                ]
                if (pod.get("status") or {}).get("conditions") != conds:
                    await self.recorder.event(pod, "Warning", "FailedScheduling", reason)
                    pod["status"] = {"phase": "Pending", "conditions": conds}
                    await self.recorder.patch_pod_status(ns, name, pod["status"])
                continue
            used[node] = used.get(node, 0) + scheduling.gpu_request(pod["spec"])
            bound = await self.kube.patch("v1", "pods", ns, name, {"spec": {"nodeName": node}})
            self.pods[bound["metadata"]["uid"]] = bound
            await self.recorder.event(
                bound, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}"
            )
            await self.start_pod(bound)


def owner_of(pod: Obj, kind: str = "Deployment") -> tuple[str, str] | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind:
            return pod["metadata"]["namespace"], ref["name"]
    return None

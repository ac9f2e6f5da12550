"""The kubelet simulator: Deployments and Jobs become Pods, Pods become local processes.

It plays the Deployment and Job controllers, the scheduler and the kubelet in one, through the API
like the real ones: it watches Deployments and Pods, creates Pods (owner reference, labels,
node chosen by nodeSelector/affinity and free `nvidia.com/gpu`), gives each its own loopback IP,
runs the container's command as a process bound to it, probes readiness, restarts crashed
processes with back-off, writes Pod and Deployment status and Events, and kills processes when
their Pods go. Containers of Hearth's own image run as the matching local console script;
other images cannot run here, so such Pods stay waiting with `ErrImagePull` and an Event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from typing import Any

import httpx

from hearth_api.model_deployment import HEARTH_IMAGE
from hearth_sim import jobs, podman, scheduling, weights
from hearth_sim.apiserver.resources import now_rfc3339
from hearth_sim.containers import PodRunner
from hearth_sim.kube import ApiError, Kube
from hearth_sim.llamacpp import Runtime, find_runtime
from hearth_sim.node import KubeletConfig

log = logging.getLogger("hearth.sim.kubelet")
Obj = dict[str, Any]


ADDRESSES = 250 * 256  # pod addresses of a block: <prefix>.0.2 … <prefix>.255.251
ADDRESS_RETRY = 10.0  # seconds before a pod that found no address looks again (a CNI retries)


def pod_address(prefix: str, n: int) -> str:
    """The n-th pod address of a /16 block (each third octet holds 250 of them, from .2)."""
    return f"{prefix}.{n // 250}.{n % 250 + 2}"


def pod_ports(pod: Obj) -> set[int]:
    """Every port the pod's containers declare (8000, an engine's, when none)."""
    return {
        int(port["containerPort"])
        for container in pod["spec"].get("containers") or []
        for port in container.get("ports") or []
        if "containerPort" in port
    } or {8000}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bindable(ip: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((ip, port))
        except OSError:
            return False
    return True


class Kubelet:
    def __init__(self, kube: Kube, config: KubeletConfig) -> None:
        self.kube = kube
        self.config = config
        self.deployments: dict[tuple[str, str], Obj] = {}
        self.pods: dict[str, Obj] = {}  # uid → pod as last seen
        self.runners: dict[str, PodRunner] = {}
        self.pids: dict[str, int] = {}  # uid → pid of the running container process
        self.contained: dict[str, str] = {}  # uid → "ns/name" of pods run as containers of the image
        self._llamacpp: tuple[Runtime | None, str] | None = None  # found on the first such pod
        self._llamacpp_lock = asyncio.Lock()  # pods starting together share one probe
        self._runtime: tuple[podman.Runtime | None, str] | None = None  # found on the first such pod
        self._runtime_lock = asyncio.Lock()
        self._ips: dict[str, str] = {}
        self._next_ip = 2
        self._no_address: set[str] = set()  # pods that found no address, to look again later
        self._dirty: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.jobs: dict[tuple[str, str], Obj] = {}
        self._dirty_jobs: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._job_due: dict[tuple[str, str], float] = {}  # when a Job's next pod may start (back-off)
        self._lock = asyncio.Lock()
        self._stopping: set[asyncio.Task[None]] = set()  # runners of deleted pods being stopped
        self.registered = asyncio.Event()  # every node is in the API: the homelab is up

    async def llamacpp(self) -> tuple[Runtime | None, str]:
        """The llama.cpp server that runs here (looked for once, off the event loop: a probe load
        takes a second or two), and which one it is or why there is none."""
        async with self._llamacpp_lock:
            if self._llamacpp is None:
                self._llamacpp = await asyncio.to_thread(find_runtime, weights.cached())
                log.info("llama.cpp pods: %s", self._llamacpp[1])
            return self._llamacpp

    @property
    def runtime_note(self) -> str:
        """How Hearth's pods run here, and why (once the first of them asked)."""
        return self._runtime[1] if self._runtime else "not looked for yet"

    async def container_runtime(self) -> podman.Runtime | None:
        """Podman and Hearth's image, looked for once (and the containers of kubelets that died
        swept away); the kubelet says once which way Hearth's pods run."""
        async with self._runtime_lock:
            if self._runtime is None:
                if not self.config.containers:
                    self._runtime = None, "containers are off for this homelab"
                elif self.config.api is None:
                    self._runtime = None, "the API server has no https listener for containers"
                else:
                    self._runtime = await podman.find_runtime(HEARTH_IMAGE, os.getpid())
                runtime, why = self._runtime
                if runtime is not None:
                    await runtime.sweep(_alive)
                    log.info("Hearth's pods run as containers: %s", why)
                else:
                    log.warning("Hearth's pods run as console scripts, not containers: %s", why)
            return self._runtime[0]

    async def run(self) -> None:
        for node in self.config.nodes:
            try:
                await self.kube.create("v1", "nodes", None, node.manifest())
            except ApiError as exc:
                if exc.code != 409:
                    raise
        self.registered.set()
        tasks = [
            asyncio.create_task(self._watch_deployments()),
            asyncio.create_task(self._watch_pods()),
            asyncio.create_task(self._reconcile_loop()),
            asyncio.create_task(self._watch_jobs()),
            asyncio.create_task(self._jobs_loop()),
            asyncio.create_task(self._bind_claims()),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await self.shutdown()

    async def shutdown(self) -> None:
        await asyncio.gather(*(r.stop() for r in list(self.runners.values())), return_exceptions=True)
        await asyncio.gather(*self._stopping, return_exceptions=True)
        self.runners.clear()

    # --- watches -----------------------------------------------------------------------------

    async def _watch_deployments(self) -> None:
        async for kind, obj in self.kube.watch("apps/v1", "deployments"):
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            if kind == "DELETED":
                self.deployments.pop(key, None)
            else:
                self.deployments[key] = obj
            self._dirty.put_nowait(key)

    async def _watch_pods(self) -> None:
        async for kind, pod in self.kube.watch("v1", "pods"):
            uid = pod["metadata"]["uid"]
            if kind == "DELETED":
                self.pods.pop(uid, None)
                runner = self.runners.get(uid)
                if runner:
                    # Off the watch: a stop may take the grace period, and other pods' events
                    # must not wait for it.
                    stopping = asyncio.create_task(self._stop_runner(uid, runner, pod))
                    self._stopping.add(stopping)
                    stopping.add_done_callback(self._stopping.discard)
                self._ips.pop(uid, None)
                # Its GPU is free now: pods waiting for one get another chance.
                for waiting in list(self.pods.values()):
                    owner = self._owner(waiting) if not waiting["spec"].get("nodeName") else None
                    if owner:
                        self._dirty.put_nowait(owner)
            else:
                self.pods[uid] = pod
                if pod["spec"].get("nodeName"):
                    await self._start_pod(pod)
            owner = self._owner(pod)
            if owner:
                self._dirty.put_nowait(owner)
            job = self._owner(pod, "Job")
            if job:
                self._dirty_jobs.put_nowait(job)

    async def _stop_runner(self, uid: str, runner: PodRunner, pod: Obj) -> None:
        # Stopped before it leaves `runners`, so a kubelet shutting down meanwhile still finds
        # (and kills) it.
        await runner.stop()
        self.runners.pop(uid, None)
        await self.event(pod, "Normal", "Killing", f"Stopped container {runner.container.get('name')}")

    async def _start_pod(self, pod: Obj) -> None:
        """Run a bound pod's containers on an address of its own — or, when no address is free,
        say so in an Event (FailedCreatePodSandBox, as a kubelet whose CNI ran out of addresses
        does) and try again every ADDRESS_RETRY seconds while the pod is there."""
        uid = pod["metadata"]["uid"]
        if uid in self.runners or uid in self._no_address:
            return
        ip = self._ips.get(uid) or self._allocate_ip(pod)
        if ip is None:
            self._no_address.add(uid)
            asyncio.get_running_loop().call_later(ADDRESS_RETRY, self._retry_address, uid)
            ports = ", ".join(str(p) for p in sorted(pod_ports(pod)))
            await self.event(
                pod,
                "Warning",
                "FailedCreatePodSandBox",
                f"Failed to create pod sandbox: no address in {self.config.ip_prefix}.0.0/16 has "
                f"port {ports} free (is a program listening on 0.0.0.0:{ports}?)",
            )
            return
        self._ips[uid] = ip
        self.runners[uid] = PodRunner(self, pod, ip)

    def _retry_address(self, uid: str) -> None:
        self._no_address.discard(uid)
        pod = self.pods.get(uid)
        if pod is not None and not pod["metadata"].get("deletionTimestamp"):
            retry = asyncio.create_task(self._start_pod(pod))
            self._stopping.add(retry)  # held, and awaited at shutdown, like a stop
            retry.add_done_callback(self._stopping.discard)

    def _allocate_ip(self, pod: Obj) -> str | None:
        """The next loopback address of the block on which every port the pod's containers
        declare is free (other homelabs, or other test sessions, may share 127/8); None once
        every address of the block was tried."""
        ports = pod_ports(pod)
        taken = set(self._ips.values())
        for _ in range(ADDRESSES):
            n = self._next_ip
            self._next_ip = self._next_ip + 1 if self._next_ip + 1 < ADDRESSES else 2
            ip = pod_address(self.config.ip_prefix, n)
            if ip not in taken and all(_bindable(ip, port) for port in ports):
                return ip
        return None

    def _owner(self, pod: Obj, kind: str = "Deployment") -> tuple[str, str] | None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == kind:
                return pod["metadata"]["namespace"], ref["name"]
        return None

    # --- the Deployment controller and scheduler ---------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            key = await self._dirty.get()
            try:
                async with self._lock:
                    await self._reconcile(key)
            except (ApiError, httpx.HTTPError) as exc:
                # Requeued, as a controller does: nothing else would bring the Deployment back
                # (after an API server outage, the resumed watch replays no change for it).
                log.warning("reconciling deployment %s/%s failed: %s; retrying in 1 s", *key, exc)
                asyncio.get_running_loop().call_later(1.0, self._dirty.put_nowait, key)

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
        desired = int((deployment.get("spec") or {}).get("replicas", 1))
        # Recreate strategy: a GPU cannot hold the old and the new replica at once.
        doomed = stale + sorted(fresh, key=lambda p: p["metadata"]["creationTimestamp"])[desired:]
        for pod in doomed:
            with contextlib.suppress(ApiError):
                await self.kube.delete("v1", "pods", ns, pod["metadata"]["name"])
                self.pods.pop(pod["metadata"]["uid"], None)
        for _ in range(desired - len(fresh)):
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

    async def _watch_jobs(self) -> None:
        async for kind, obj in self.kube.watch("batch/v1", "jobs"):
            key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
            if kind == "DELETED":
                self.jobs.pop(key, None)
            else:
                self.jobs[key] = obj
            self._dirty_jobs.put_nowait(key)

    async def _jobs_loop(self) -> None:
        while True:
            key = await self._dirty_jobs.get()
            try:
                async with self._lock:
                    await self._reconcile_job(key)
            except (ApiError, httpx.HTTPError) as exc:
                log.warning("reconciling job %s/%s failed: %s; retrying in 1 s", *key, exc)
                asyncio.get_running_loop().call_later(1.0, self._dirty_jobs.put_nowait, key)

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
                    await self.event(pod, "Warning", "FailedScheduling", reason)
                    pod["status"] = {"phase": "Pending", "conditions": conds}
                    await self.patch_pod_status(ns, name, pod["status"])
                continue
            used[node] = used.get(node, 0) + scheduling.gpu_request(pod["spec"])
            bound = await self.kube.patch("v1", "pods", ns, name, {"spec": {"nodeName": node}})
            self.pods[bound["metadata"]["uid"]] = bound
            await self.event(bound, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}")
            await self._start_pod(bound)

    # --- API helpers -------------------------------------------------------------------------

    async def patch_pod_status(self, ns: str, name: str, status: Obj) -> None:
        """Write a pod's status, retried while the API server cannot be reached, as a kubelet's
        status manager does: a Ready lost in an outage would leave the pod ready in fact and
        not-ready in the API for good (nothing else changes to write it again)."""
        delay = 0.1
        while True:
            try:
                await self.kube.patch("v1", "pods", ns, name, {"status": status}, sub="status")
                return
            except ApiError as exc:
                if exc.code != 404:  # a pod deleted meanwhile needs no status
                    raise
                return
            except httpx.TransportError as exc:
                log.info("status of pod %s/%s not written (%s); retrying", ns, name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        stamp = now_rfc3339()
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta.get("namespace", "default")},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", "Pod"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "kubelet", "host": obj.get("spec", {}).get("nodeName", "")},
        }
        try:
            await self.kube.create("v1", "events", meta.get("namespace", "default"), body)
        except (ApiError, httpx.HTTPError) as exc:
            log.debug("event %s for %s not recorded: %s", reason, meta["name"], exc)

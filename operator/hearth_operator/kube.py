"""The operator's writes to the API: its children (created, then merge-patched), CR status and
Events. Thin I/O.

Children are never replaced with a full PUT: the kubelet (or the Deployment controller) writes
their status concurrently, and a PUT carrying the resourceVersion read a moment ago would be
refused with 409. A JSON merge patch of the fields the operator owns — the manifest, with
explicit nulls for what it dropped — needs no resourceVersion and cannot race with status.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from hearth_api.names import API_VERSION, GROUP, KIND, PLURAL, VERSION
from hearth_api.times import now_rfc3339
from hearth_operator.children import differs, without_nulls

log = logging.getLogger("hearth.operator.kube")
MERGE = "application/merge-patch+json"


@dataclass(frozen=True)
class _Calls:
    """The generated client's calls for one kind of child."""

    read: Any
    create: Any
    patch: Any


class Writer:
    def __init__(self, api: client.ApiClient) -> None:
        # Typed as Any: the generated client takes plain dicts at run time, though its stubs
        # name only its model classes; manifests here are dicts built by children.py.
        self.apps: Any = client.AppsV1Api(api)
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.batch: Any = client.BatchV1Api(api)
        self._deployments = _Calls(
            self.apps.read_namespaced_deployment,
            self.apps.create_namespaced_deployment,
            self.apps.patch_namespaced_deployment,
        )
        self._service_calls = _Calls(
            self.core.read_namespaced_service,
            self.core.create_namespaced_service,
            self.core.patch_namespaced_service,
        )
        self._services: dict[str, Any] = {}  # owner uid → the Service spec last made to match

    async def ensure_service(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None:
        """Create the Service, or bring it to the manifest (a port change). Its spec changes only
        with the model's port, so reconciles that did not change it skip the API entirely."""
        if self._services.get(owner["uid"]) == manifest["spec"]:
            return
        await self._ensure(self._service_calls, manifest, owner)
        self._services[owner["uid"]] = manifest["spec"]

    async def ensure_deployment(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None:
        """Create the Deployment, or bring it to the manifest — checked on every reconcile, so a
        hand-made change (a `kubectl scale`) is undone."""
        await self._ensure(self._deployments, manifest, owner)

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """Set the replicas of a Deployment that may not exist (nothing to stop, then)."""
        try:
            await self.apps.patch_namespaced_deployment(
                name, namespace, {"spec": {"replicas": replicas}}, _content_type=MERGE
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def ensure_job(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None:
        """Create the fetch Job unless it exists: a Job's pod template cannot change once made
        (a new source means a new Job, after the old one is deleted)."""
        manifest["metadata"]["ownerReferences"] = [owner]
        try:
            await self.batch.create_namespaced_job(manifest["metadata"]["namespace"], without_nulls(manifest))
        except ApiException as exc:
            if exc.status != 409:
                raise

    async def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and, through the garbage collector, its pods (a fetch is stopped)."""
        try:
            await self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def _ensure(self, calls: _Calls, manifest: dict[str, Any], owner: dict[str, Any]) -> None:
        """Create a child, or merge-patch it where its spec or labels differ from the manifest.
        Lost a race to create it (409)? Read it again at once and patch that."""
        manifest["metadata"]["ownerReferences"] = [owner]
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        for attempt in (1, 2):
            # Raw JSON, not the client's model objects, so it compares with the dict manifest.
            current = await calls.read(name, ns, _preload_content=False)
            body = await current.json()
            if current.status == 404:
                try:
                    await calls.create(ns, without_nulls(manifest))
                except ApiException as exc:
                    if exc.status == 409 and attempt == 1:
                        continue
                    raise
                return
            if current.status >= 400:
                raise ApiException(status=current.status, reason=str(body.get("message")))
            labels = manifest["metadata"]["labels"]
            if differs(manifest["spec"], body.get("spec") or {}) or differs(
                labels, body["metadata"].get("labels") or {}
            ):
                patch = {"metadata": {"labels": labels}, "spec": manifest["spec"]}
                await calls.patch(name, ns, patch, _content_type=MERGE)
            return

    async def event(self, body: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event on the ModelDeployment (best effort: never fails a reconcile)."""
        meta = body["metadata"]
        stamp = now_rfc3339()
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta.get("namespace", "default")},
            "involvedObject": {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": "hearth-operator"},
            "reportingComponent": "hearth-operator",
        }
        try:
            await self.core.create_namespaced_event(meta.get("namespace", "default"), event)
        except (ApiException, OSError) as exc:
            log.warning("event %s on %s not recorded: %s", reason, meta["name"], exc)

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        await self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _content_type=MERGE
        )


def transient(exc: Exception) -> bool:
    """A failure that retrying cures: the API server unreachable, restarting or overloaded."""
    if isinstance(exc, aiohttp.ClientConnectionError | TimeoutError):
        return True
    return isinstance(exc, ApiException) and exc.status in (429, 500, 502, 503, 504)

"""The operator's writes to the API: children (create or patch), CR status. Thin I/O."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from hearth_operator.api import GROUP, PLURAL, VERSION

log = logging.getLogger("hearth.operator.kube")
MERGE = "application/merge-patch+json"


async def api_client() -> client.ApiClient:
    """In a pod: the service account; elsewhere: the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


def owner_reference(md_body: dict[str, Any]) -> dict[str, Any]:
    meta = md_body["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class Writer:
    def __init__(self, api: client.ApiClient) -> None:
        # Typed as Any: the generated client takes plain dicts at run time, though its stubs
        # name only its model classes; manifests here are dicts built by children.py.
        self.apps: Any = client.AppsV1Api(api)
        self.core: Any = client.CoreV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self._services: dict[str, Any] = {}  # owner uid → the Service spec last made to match

    async def ensure_service(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None:
        """Create the Service, or bring it to the manifest (a port change). Its spec changes only
        with the model's port, so reconciles that did not change it skip the API entirely."""
        if self._services.get(owner["uid"]) == manifest["spec"]:
            return

        async def update(name: str, ns: str, body: dict[str, Any]) -> None:
            # A merge patch, not a replace: the API server owns spec.clusterIP.
            patch = {"metadata": {"labels": manifest["metadata"]["labels"]}, "spec": manifest["spec"]}
            await self.core.patch_namespaced_service(name, ns, patch, _content_type=MERGE)

        await self._ensure(
            self.core.read_namespaced_service, self.core.create_namespaced_service, update, manifest, owner
        )
        self._services[owner["uid"]] = manifest["spec"]

    async def ensure_deployment(self, manifest: dict[str, Any], owner: dict[str, Any]) -> None:
        """Create the Deployment, or bring it to the manifest — checked on every reconcile, so a
        hand-made change (a `kubectl scale`) is undone."""

        async def update(name: str, ns: str, body: dict[str, Any]) -> None:
            # A full replace, so what the manifest drops (a nodeSelector, an env var) goes too;
            # a concurrent change makes it 409 and the reconcile runs again.
            manifest["metadata"]["resourceVersion"] = body["metadata"]["resourceVersion"]
            await self.apps.replace_namespaced_deployment(name, ns, manifest)

        await self._ensure(
            self.apps.read_namespaced_deployment,
            self.apps.create_namespaced_deployment,
            update,
            manifest,
            owner,
        )

    async def _ensure(
        self, read: Any, create: Any, update: Any, manifest: dict[str, Any], owner: dict[str, Any]
    ) -> None:
        """Create a child, or update it when its spec or labels differ from the manifest's."""
        manifest["metadata"]["ownerReferences"] = [owner]
        ns, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        # Raw JSON, not the client's model objects, so it compares with the dict manifest.
        current = await read(name, ns, _preload_content=False)
        body = await current.json()
        if current.status == 404:
            await create(ns, manifest)
            return
        if current.status >= 400:
            raise ApiException(status=current.status, reason=str(body.get("message")))
        if _differs(manifest["spec"], body.get("spec") or {}) or _differs(
            manifest["metadata"]["labels"], body["metadata"].get("labels") or {}
        ):
            await update(name, ns, body)

    async def event(self, body: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event on the ModelDeployment (best effort: never fails a reconcile)."""
        meta = body["metadata"]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta.get("namespace", "default")},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelDeployment",
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


def _differs(wanted: Any, actual: Any) -> bool:
    """True when `actual` lacks or contradicts anything in `wanted` (server defaults may add more)."""
    if isinstance(wanted, dict):
        return not isinstance(actual, dict) or any(_differs(v, actual.get(k)) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (
            not isinstance(actual, list)
            or len(wanted) != len(actual)
            or any(_differs(w, a) for w, a in zip(wanted, actual, strict=True))
        )
    return bool(wanted != actual)

"""A small async Kubernetes API client over httpx, for the simulator's own controllers.

The operator and the router use kopf and kubernetes_asyncio; the simulated kubelet only needs
get/list/create/patch/delete and a resumable watch on plain dicts, which this gives.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

log = logging.getLogger("hearth.sim.kube")
Obj = dict[str, Any]


class ApiError(Exception):
    def __init__(self, code: int, body: Any) -> None:
        super().__init__(f"{code}: {body.get('message') if isinstance(body, dict) else body}")
        self.code = code
        self.body = body


def path_for(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    sub: str | None = None,
) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    if sub:
        parts.append(sub)
    return "/".join(parts)


def kubeconfig(
    server: str, namespace: str = "default", user: str = "hearth-sim", token: str = "hearth-sim"
) -> dict[str, Any]:
    """A kubeconfig for the homelab's API server: the admin's, or a pod's ServiceAccount's."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": "hearth-sim", "cluster": {"server": server}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": "hearth-sim", "context": {"cluster": "hearth-sim", "user": user, "namespace": namespace}}
        ],
        "current-context": "hearth-sim",
    }


class Kube:
    def __init__(self, server: str, token: str = "hearth-sim") -> None:
        self.http = httpx.AsyncClient(
            base_url=server,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(10, read=None),
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> Obj:
        response = await self.http.request(method, path, **kw)
        body = response.json() if response.content else {}
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return dict(body)

    async def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> Obj:
        return await self._call("GET", path_for(api_version, plural, namespace, name))

    async def list(
        self, api_version: str, plural: str, namespace: str | None = None, label_selector: str | None = None
    ) -> Obj:
        params = {"labelSelector": label_selector} if label_selector else {}
        return await self._call("GET", path_for(api_version, plural, namespace), params=params)

    async def create(self, api_version: str, plural: str, namespace: str | None, body: Obj) -> Obj:
        return await self._call("POST", path_for(api_version, plural, namespace), json=body)

    async def replace(
        self, api_version: str, plural: str, namespace: str | None, name: str, body: Obj
    ) -> Obj:
        return await self._call("PUT", path_for(api_version, plural, namespace, name), json=body)

    async def patch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Obj,
        sub: str | None = None,
    ) -> Obj:
        return await self._call(
            "PATCH",
            path_for(api_version, plural, namespace, name, sub),
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    async def request_token(self, namespace: str, account: str) -> str:
        """A ServiceAccount's token, through the TokenRequest API (as a kubelet gets one)."""
        path = path_for("v1", "serviceaccounts", namespace, account, "token")
        answer = await self._call(
            "POST", path, json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest"}
        )
        return str(answer["status"]["token"])

    async def delete(self, api_version: str, plural: str, namespace: str | None, name: str) -> Obj:
        return await self._call("DELETE", path_for(api_version, plural, namespace, name))

    async def watch(self, api_version: str, plural: str) -> AsyncIterator[tuple[str, Obj]]:
        """List, then watch from the list's resourceVersion; after a broken stream resume from
        the last seen version, and re-list (as ADDED/DELETED) when it is too old."""
        known: dict[str, Obj] = {}
        rv = ""
        while True:
            if not rv:
                listing = await self.list(api_version, plural)
                fresh = {o["metadata"]["uid"]: o for o in listing.get("items", [])}
                for uid, obj in known.items():
                    if uid not in fresh:
                        yield "DELETED", obj
                for obj in fresh.values():
                    yield "ADDED", obj
                known, rv = fresh, listing["metadata"]["resourceVersion"]
            try:
                async with self.http.stream(
                    "GET",
                    path_for(api_version, plural),
                    params={"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true"},
                ) as stream:
                    async for line in stream.aiter_lines():
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        kind, obj = event["type"], event["object"]
                        if kind == "ERROR":
                            rv = ""  # too old: re-list
                            break
                        rv = obj["metadata"].get("resourceVersion", rv)
                        if kind == "BOOKMARK":
                            continue
                        if kind == "DELETED":
                            known.pop(obj["metadata"]["uid"], None)
                        else:
                            known[obj["metadata"]["uid"]] = obj
                        yield kind, obj
            except httpx.TransportError as exc:
                log.warning("watch %s broke (%s); resuming", plural, exc)
                await asyncio.sleep(0.5)  # back off while the API server is away

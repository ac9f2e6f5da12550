"""HTTP face of the API server: kmock's KubernetesEmulator with the Kubernetes semantics of
store.py behind it.

kmock gives the aiohttp server, request parsing and the request log (`emulator.requests`);
this subclass answers every request itself: discovery that kubectl's REST mapper accepts,
CRUD/patch/watch over the store, server-side Tables for `kubectl get`. Each gap of the stock
emulator it fixes has a test in tests/cluster/test_apiserver.py, run against both (the stock
one's expected to fail).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

from hearth_sim.apiserver import discovery, errors, patching, protobuf, tables
from hearth_sim.apiserver.auth import Authorizer
from hearth_sim.apiserver.resources import ResourceType
from hearth_sim.apiserver.store import Store
from hearth_sim.apiserver.watch_stream import stream_watch, truthy

log = logging.getLogger("hearth.sim.apiserver")

REQUEST_LOG_LIMIT = 2000


@attrs.frozen
class Target:
    """A parsed resource URL."""

    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_resource_path(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if rest[:1] == ["watch"]:
        rest = rest[1:]
    if not rest:
        return None
    namespace = None
    # /namespaces/NS/<plural>/... is namespaced; /namespaces[/NAME[/status]] is the namespace itself.
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) or None
    return Target(group, version, plural, namespace, name, sub)


def _action(method: str, target: Target | None, params: dict[str, str]) -> kmock.action | None:
    """The Kubernetes verb of a request, for the request log."""
    if target is None:
        return None
    if method == "GET":
        if truthy(params.get("watch")):
            return kmock.action.WATCH
        return kmock.action.FETCH if target.name else kmock.action.LIST
    return {
        "POST": kmock.action.CREATE,
        "PATCH": kmock.action.UPDATE,
        "PUT": kmock.action.UPDATE,
        "DELETE": kmock.action.DELETE,
    }.get(method)


@attrs.define(kw_only=True)
class HearthApiServer(kmock.KubernetesEmulator):
    store: Store = attrs.field(factory=Store)
    auth: Authorizer = attrs.field(init=False)
    # Where the kubelet keeps each pod's output, for `kubectl logs` (namespace, pod) → file.
    pod_log: Callable[[str, str], Path | None] | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.auth = Authorizer(self.store)
        for rtype in discovery.builtin_types():
            self.store.register(rtype)
        for ns in ("default", "kube-system", "kube-public"):
            self.store.create(
                self.store.resolve("", "v1", "namespaces"),
                None,
                {"metadata": {"name": ns}, "status": {"phase": "Active"}},
            )

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Record the request in kmock's log (kept bounded: a long-running server must not
        grow without end) and answer it. kmock's own path parser is bypassed: it crashes on
        `/api/v1/namespaces` and mis-routes `/api/v1/namespaces/NAME`."""
        body = await raw_request.read()
        target = parse_resource_path(raw_request.path)
        method = raw_request.method.upper()
        request = kmock.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=method,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            body=body,
            text=body.decode(errors="replace"),
            action=_action(method, target, dict(raw_request.query)),
            resource=None if target is None else kmock.resource(target.group, target.version, target.plural),
            namespace=None if target is None else target.namespace,
            name=None if target is None else target.name,
            subresource=None if target is None else target.subresource,
        )
        self._requests.append(request)
        if len(self._requests) > REQUEST_LOG_LIMIT:
            del self._requests[: len(self._requests) - REQUEST_LOG_LIMIT // 2]
        try:
            return await self._handle(request)
        except Exception as exc:  # a bug here must reach the client as a Status, not a hang
            log.exception("api server failed on %s %s", method, raw_request.path_qs)
            return aiohttp.web.json_response(
                errors.ApiError(500, "InternalError", repr(exc)).status(), status=500
            )

    def end_watches(self) -> None:
        """End every open watch stream, as a restarting API server does."""
        for watch in list(self.store.watches):
            watch.queue.put_nowait({"type": "END"})

    @property
    def requests(self) -> list[Any]:
        return list(self._requests)

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        try:
            path = request.url.path
            target = parse_resource_path(path)
            watching = "/watch/" in path or truthy(request.params.get("watch"))
            self.auth.check(request.headers, request.method, target, watching)
            return await self._route(request)
        except errors.ApiError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code)

    # --- routing -----------------------------------------------------------------------------

    async def _route(self, request: Any) -> aiohttp.web.StreamResponse:
        path: str = request.url.path.rstrip("/") or "/"
        method = str(request.method.value).upper()
        params: dict[str, str] = dict(request.params)
        if method == "GET":
            fixed = self._serve_fixed(path)
            if fixed is not None:
                return fixed
        target = parse_resource_path(path)
        if target is None:
            raise errors.ApiError(
                404, "NotFound", f"the server could not find the requested resource ({path})"
            )
        if target.plural == "serviceaccounts" and target.subresource == "token" and method == "POST":
            # TokenRequest: a ServiceAccount's token, as a kubelet asks for one per pod.
            issued = self.auth.issue(target.namespace or "default", target.name or "")
            return aiohttp.web.json_response(issued, status=201)
        rtype = self.store.resolve(target.group, target.version, target.plural)
        if target.subresource == "scale" and target.name:
            return aiohttp.web.json_response(await self._serve_scale(request, rtype, target, method))
        if method == "GET":
            return await self._serve_read(request, rtype, target, params, path)
        return self._serve_write(request, rtype, target, params, method, path)

    def _serve_fixed(self, path: str) -> aiohttp.web.Response | None:
        """Discovery, the OpenAPI stub and the health paths: answers that name no resource."""
        doc = discovery.document(list(self.store.types.values()), path)
        if doc is not None:
            return aiohttp.web.json_response(doc)
        if path == "/openapi/v2":
            # An empty protobuf document: kubectl then skips client-side validation.
            return aiohttp.web.Response(
                body=b"", content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
            )
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        return None

    async def _serve_read(
        self, request: Any, rtype: ResourceType, target: Target, params: dict[str, str], path: str
    ) -> aiohttp.web.StreamResponse:
        accept = request.headers.get("Accept", "")
        if "/watch/" in path or truthy(params.get("watch")):
            return await stream_watch(
                request._raw_request, self.store, rtype, target.namespace, target.name, params, accept
            )
        if target.subresource == "log" and rtype.kind == "Pod" and target.name:
            return self._serve_log(target, params)
        if target.name:
            obj = self.store.get(rtype, target.namespace, target.name)
            return self._reply(rtype, [obj], accept, single=True)
        items = self.store.list_objects(
            rtype, target.namespace, params.get("labelSelector"), params.get("fieldSelector")
        )
        return self._reply(rtype, items, accept, single=False)

    def _serve_write(
        self,
        request: Any,
        rtype: ResourceType,
        target: Target,
        params: dict[str, str],
        method: str,
        path: str,
    ) -> aiohttp.web.Response:
        body = self._body(request)
        strict = params.get("fieldValidation") == "Strict"  # kubectl's default
        name, namespace = target.name, target.namespace
        if method == "POST" and not name:
            return aiohttp.web.json_response(self.store.create(rtype, namespace, body, strict), status=201)
        if method == "PUT" and name:
            return aiohttp.web.json_response(
                self.store.replace(rtype, namespace, name, body, target.subresource, strict)
            )
        if method == "PATCH" and name:
            ctype = request.headers.get("Content-Type", patching.MERGE)
            return aiohttp.web.json_response(
                self.store.patch(rtype, namespace, name, ctype, body, target.subresource, strict)
            )
        if method == "DELETE" and name:
            return aiohttp.web.json_response(self.store.delete(rtype, namespace, name))
        if method == "DELETE":
            gone = self.store.delete_collection(
                rtype, namespace, params.get("labelSelector"), params.get("fieldSelector")
            )
            return aiohttp.web.json_response(self._list_doc(rtype, gone))
        raise errors.ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")

    def _serve_log(self, target: Target, params: dict[str, str]) -> aiohttp.web.Response:
        """`kubectl logs`: the pod's output as the kubelet recorded it (`tailLines` honoured)."""
        assert target.name is not None
        self.store.get(self.store.resolve("", "v1", "pods"), target.namespace, target.name)  # 404 if none
        path = self.pod_log(target.namespace or "default", target.name) if self.pod_log else None
        text = path.read_text(errors="replace") if path is not None and path.exists() else ""
        if params.get("tailLines", "").isdigit():
            text = "".join(text.splitlines(keepends=True)[-int(params["tailLines"]) :])
        return aiohttp.web.Response(text=text, content_type="text/plain")

    async def _serve_scale(
        self, request: Any, rtype: ResourceType, target: Target, method: str
    ) -> dict[str, Any]:
        """The scale subresource speaks autoscaling/v1 Scale (kubectl scale)."""
        assert target.name is not None
        if method in ("PATCH", "PUT"):
            body = self._body(request)
            replicas = (body.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.invalid("Scale", target.name, "spec.replicas: must be a non-negative integer")
            self.store.patch(
                rtype, target.namespace, target.name, patching.MERGE, {"spec": {"replicas": replicas}}
            )
        obj = self.store.get(rtype, target.namespace, target.name)
        meta = obj["metadata"]
        labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in labels.items()),
            },
        }

    def _body(self, request: Any) -> Any:
        raw: bytes = request.body
        ctype = request.headers.get("Content-Type", "")
        if not raw:
            return {}
        if "protobuf" in ctype:
            return protobuf.decode(raw)  # Helm's release Secrets; other kinds are a 415
        try:
            return yaml.safe_load(raw) if "yaml" in ctype else json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"the request body is not valid: {exc}") from None

    def _list_doc(self, rtype: ResourceType, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "apiVersion": rtype.api_version,
            "kind": f"{rtype.kind}List",
            "metadata": {"resourceVersion": self.store.resource_version},
            "items": items,
        }

    def _reply(
        self, rtype: ResourceType, items: list[dict[str, Any]], accept: str, single: bool
    ) -> aiohttp.web.Response:
        if tables.wants_table(accept):
            return aiohttp.web.json_response(
                tables.table(rtype.kind, rtype.printer_columns, items, self.store.resource_version)
            )
        return aiohttp.web.json_response(items[0] if single else self._list_doc(rtype, items))

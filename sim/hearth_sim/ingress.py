"""A small ingress controller for the simulated homelab: one local port, routed by the cluster's
Ingress objects (host, path, pathType) to the Ready pods behind the backend Service in turn, streamed
through without buffering (server-sent events arrive as they are sent), as ingress-nginx with
`proxy-buffering: off` does. It reads Ingresses, Services and Pods through the API, like any
controller. Paths are passed on unchanged (no rewrite), as ingress-nginx does by default."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import aiohttp.web

from hearth_sim.kube import Kube
from hearth_sim.services import Rotation, endpoints

log = logging.getLogger("hearth.sim.ingress")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
}
Obj = dict[str, Any]


def match(ingresses: list[Obj], host: str, path: str) -> tuple[Obj, Obj] | None:
    """The (Ingress, HTTP path rule) a request goes to: an Exact path first, then the longest
    Prefix, among rules whose host is the request's (or that name no host). Pure."""
    best: tuple[int, Obj, Obj] | None = None
    for ingress in ingresses:
        for rule in (ingress.get("spec") or {}).get("rules") or []:
            if rule.get("host") not in (None, "", host):
                continue
            for item in (rule.get("http") or {}).get("paths") or []:
                want, kind = item.get("path", "/"), item.get("pathType", "Prefix")
                if kind == "Exact":
                    score = 10_000 if path == want else -1
                else:
                    prefix = want.rstrip("/")
                    score = len(prefix) if path == prefix or path.startswith(prefix + "/") else -1
                if score >= 0 and (best is None or score > best[0]):
                    best = (score, ingress, item)
    return (best[1], best[2]) if best else None


class IngressController:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        # As ingress-nginx: no cap on connections to the pods (aiohttp's default is 100 would
        # hold the 101st stream back in the proxy, unseen by the router's limits), and idle ones
        # kept 60 s (its upstream-keepalive-timeout) — a pod that closes its side sooner sees
        # requests sent on a connection it is closing, as it would behind the real one.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        self.http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5), connector=connector
        )
        self.rotation = Rotation()

    async def close(self) -> None:
        await self.http.close()

    async def _endpoint(self, namespace: str, backend: Obj) -> str | None:
        """host:port of a Ready pod behind the backend Service, in turn (round robin)."""
        service = backend.get("service") or {}
        ready = await endpoints(self.kube, namespace, service.get("name", ""), service.get("port") or {})
        return self.rotation.pick(ready)

    async def handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        host = request.host.split(":")[0]
        ingresses = (await self.kube.list("networking.k8s.io/v1", "ingresses"))["items"]
        found = match(ingresses, host, request.path)
        if found is None:
            return aiohttp.web.Response(status=404, text="default backend - 404\n")
        ingress, item = found
        endpoint = await self._endpoint(ingress["metadata"]["namespace"], item.get("backend") or {})
        if endpoint is None:
            return aiohttp.web.Response(status=503, text="503 Service Temporarily Unavailable\n")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-Host"] = request.host
        async with self.http.request(
            request.method, f"http://{endpoint}{request.path_qs}", headers=headers, data=await request.read()
        ) as upstream:
            response = aiohttp.web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():  # as it comes: no buffering
                await response.write(chunk)
            await response.write_eof()
            return response


@contextlib.asynccontextmanager
async def serve_ingress(kube: Kube, host: str, port: int) -> AsyncIterator[str]:
    """Run the controller on host:port; yields its URL."""
    controller = IngressController(kube)
    app = aiohttp.web.Application()
    app.router.add_route("*", "/{tail:.*}", controller.handle)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
        await controller.close()

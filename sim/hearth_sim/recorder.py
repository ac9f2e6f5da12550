"""What the homelab's controllers write besides objects: Events, and a pod's status — retried
while the API server cannot be reached, as a kubelet's status manager does."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from hearth_sim.apiserver.resources import now_rfc3339
from hearth_sim.kube import ApiError, Kube

log = logging.getLogger("hearth.sim.kubelet")
Obj = dict[str, Any]


class Recorder:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

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

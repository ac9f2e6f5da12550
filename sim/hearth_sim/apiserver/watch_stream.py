"""A watch over HTTP, as kube-apiserver streams it: one JSON event per line (as server-side
Table rows for `kubectl get -w`), until its timeoutSeconds, an END (the server stopping) or an
ERROR (410 Gone) — and the registration dropped however it ends."""

from __future__ import annotations

import asyncio
import json

import aiohttp.web

from hearth_sim.apiserver import tables
from hearth_sim.apiserver.resources import ResourceType
from hearth_sim.apiserver.store import Store


def truthy(value: str | None) -> bool:
    """A query flag as the API server reads it (`watch=true`, `watch=1`)."""
    return (value or "").lower() in ("true", "1")


async def stream_watch(
    raw_request: aiohttp.web.BaseRequest,
    store: Store,
    rtype: ResourceType,
    namespace: str | None,
    name: str | None,
    params: dict[str, str],
    accept: str,
) -> aiohttp.web.StreamResponse:
    field_selector = params.get("fieldSelector")
    watch = store.watch(
        rtype,
        namespace,
        name,
        params.get("labelSelector"),
        field_selector,
        params.get("resourceVersion"),
        truthy(params.get("sendInitialEvents")),
    )
    as_table = tables.wants_table(accept)
    timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
    # aiohttp's default streaming type (octet-stream) breaks kubectl's watch decoder.
    response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(raw_request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout else None
    try:
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            try:
                event = await asyncio.wait_for(watch.queue.get(), remaining)
            except TimeoutError:
                break
            if event["type"] == "END":
                break
            if as_table and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                event = {
                    "type": event["type"],
                    "object": tables.table(
                        rtype.kind,
                        rtype.printer_columns,
                        [event["object"]],
                        event["object"]["metadata"].get("resourceVersion", ""),
                    ),
                }
            await response.write(json.dumps(event).encode() + b"\n")
            if event["type"] == "ERROR":
                break
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away (or the server is stopping): the watch just ends
    finally:
        store.unwatch(watch)
    return response

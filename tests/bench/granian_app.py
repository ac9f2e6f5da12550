"""The router's app for granian (a Rust HTTP server for ASGI), for `make bench`'s front-door
comparison: `granian --interface asgi tests.bench.granian_app:app`. The same `create_app` as
`hearth-router` (settings from HEARTH_ROUTER_*), built at lifespan startup because its
Kubernetes client is made in the server's event loop. Nothing else differs: no drain on
SIGTERM (that is uvicorn's `DrainingServer`), which the benchmark does not use."""

from __future__ import annotations

import os
from typing import Any

from hearth_api.connect import api_client
from hearth_api.environment import load_settings
from hearth_router.app import create_app
from hearth_router.settings import RouterSettings

Scope = dict[str, Any]


class LazyRouter:
    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if self.app is None:
            settings = load_settings(RouterSettings, "hearth-router (granian)", os.environ)
            self.app = create_app(settings, await api_client())
        await self.app(scope, receive, send)


app = LazyRouter()

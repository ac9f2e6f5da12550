"""The router app's own edges, driven in-process (no cluster): start-up and browsers."""

from __future__ import annotations

import httpx

from hearth_router.app import create_app
from hearth_router.registry import Registry
from hearth_router.settings import RouterSettings


def client(registry: Registry, **settings: object) -> httpx.AsyncClient:
    app = create_app(RouterSettings.model_validate(settings), None, registry)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router")


async def test_before_the_first_list_requests_get_503_not_404() -> None:
    async with client(Registry(None)) as http:
        assert (await http.get("/readyz")).status_code == 503
        r = await http.post(
            "/v1/chat/completions", json={"model": "x", "messages": [{"role": "user", "content": "x"}]}
        )
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
    assert r.headers["retry-after"] == "2"


async def test_browsers_may_call_it_from_other_origins() -> None:
    registry = Registry(None)
    registry.ready.set()
    async with client(registry, cors_origins=["http://webui.lan"]) as http:
        preflight = await http.options(
            "/v1/chat/completions",
            headers={
                "Origin": "http://webui.lan",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        other = await http.options(
            "/v1/chat/completions",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://webui.lan"
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers

"""The router's wake, against an API server that refuses it: the client hears why at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from kubernetes_asyncio import client

from hearth_api.model_deployment import Phase
from hearth_router.annotations import Annotator
from hearth_router.errors import RouterError
from hearth_router.line import LocalLine


@pytest.fixture
async def refusing_api() -> AsyncIterator[tuple[client.ApiClient, list[int]]]:
    """An API server on loopback that answers every PATCH with the next status of `answers`."""
    answers: list[int] = []
    patched: list[str] = []

    async def patch(request: web.Request) -> web.Response:
        patched.append(request.path)
        code = answers.pop(0) if answers else 200
        body = {"kind": "Status", "code": code, "message": "nope", "reason": "Forbidden"}
        return web.json_response(body if code >= 400 else {"metadata": {}}, status=code)

    app = web.Application()
    app.router.add_route("PATCH", "/{tail:.*}", patch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = client.Configuration(host=f"http://127.0.0.1:{port}")
    api = client.ApiClient(config)
    yield api, answers
    await api.close()
    await runner.cleanup()


async def test_a_refused_wake_is_an_error_naming_why_and_the_next_request_tries_again(
    refusing_api: tuple[client.ApiClient, list[int]],
) -> None:
    api, answers = refusing_api
    annotator = Annotator(api)
    answers.append(403)
    with pytest.raises(RouterError) as refused:
        await annotator.ensure_awake("default/medium", Phase.COLD)
    assert refused.value.status == 503 and refused.value.code == "wake_refused"
    assert "403" in refused.value.message and "RBAC" in refused.value.message
    answers.append(404)
    with pytest.raises(RouterError) as gone:
        await annotator.ensure_awake("default/medium", Phase.COLD)
    assert gone.value.code == "model_deleted"
    await annotator.ensure_awake("default/medium", Phase.COLD)  # accepted this time: no error


class SlowStoreLine(LocalLine):
    """A line whose wake guard is a store step that takes until `answer` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.claimed = asyncio.Event()
        self.claims = 0

    async def claim_wake(self, key: str, seconds: float) -> bool:
        self.claims += 1
        self.claimed.set()
        await self.answer.wait()
        return True


async def test_requests_that_waited_behind_the_wake_guard_send_no_second_wake_once_loading() -> None:
    # A herd arrives Cold; the first holds the guard (a store round trip) while the rest wait
    # for it with the phase they read then. The model starts loading meanwhile: the ones
    # still waiting must not open a new cold period with a stale "Cold".
    line = SlowStoreLine()
    annotator = Annotator(None, line=line)
    key = "default/medium"
    annotator.observe(key, Phase.COLD)
    herd = [asyncio.create_task(annotator.ensure_awake(key, Phase.COLD)) for _ in range(5)]
    await line.claimed.wait()
    annotator.observe(key, Phase.LOADING)  # the operator acted on the first wake
    line.answer.set()
    await asyncio.gather(*herd)
    assert line.claims == 1
    annotator.observe(key, Phase.COLD)  # scaled to zero later: the next cold period wakes again
    await annotator.ensure_awake(key, Phase.COLD)
    assert line.claims == 2


class GuardLine(LocalLine):
    """Replicas' lines sharing one wake guard, as the store's set-if-absent keeps it."""

    def __init__(self, guards: dict[str, bool], wakes: list[str]) -> None:
        super().__init__()
        self.guards, self.wakes = guards, wakes

    async def claim_wake(self, key: str, seconds: float) -> bool:
        if self.guards.get(key):
            return False
        self.guards[key] = True
        self.wakes.append(key)
        return True

    def wake_over(self, key: str) -> None:
        self.guards.pop(key, None)


async def test_a_replica_whose_watch_lags_sends_no_second_wake_while_the_model_loads() -> None:
    guards: dict[str, bool] = {}
    wakes: list[str] = []
    key = "default/medium"
    first, second = (Annotator(None, line=GuardLine(guards, wakes)) for _ in range(2))
    await first.ensure_awake(key, Phase.COLD)
    first.observe(key, Phase.LOADING)  # the first replica's watch sees the load begin …
    await second.ensure_awake(key, Phase.COLD)  # … the second's still says Cold
    assert wakes == [key]
    first.observe(key, Phase.WARM)  # the cold period is over: the next one wakes again
    second.observe(key, Phase.WARM)
    first.observe(key, Phase.COLD)
    second.observe(key, Phase.COLD)
    await second.ensure_awake(key, Phase.COLD)
    assert wakes == [key, key]

"""The dashboard as a person uses it: a cold start shown stage by stage, the board and GPU map
following without a reload, an eviction named, cancel, a crash and Retry, model output kept as
text, the board's actions, a path prefix, and an API key."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import ClientSession, ClientTimeout, web
from playwright.async_api import Browser, Page, expect

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube

from ..cluster.conftest import eventually, free_port
from ..cluster.operator_helpers import MD_API, sim_md, wait_phase
from ..cluster.router_helpers import RouterProcess, cold_model
from .conftest import shot

MDS = "modeldeployments"
WAIT = 30_000  # ms: generous for a loaded CI machine; every wait ends as soon as the page is right


apply = cold_model


async def open_dashboard(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("#feed-state")).to_have_text("live", timeout=WAIT)


async def send(page: Page, model: str, text: str) -> None:
    await expect(page.locator(f'#model option[value="{model}"]')).to_have_count(1, timeout=WAIT)
    await page.select_option("#model", model)
    await page.fill("#prompt", text)
    await page.press("#prompt", "Enter")


def last_reply(page: Page) -> Any:
    return page.locator("li.msg.assistant").last


def card(page: Page, model: str) -> Any:
    return page.locator(f'#models li.model[data-model="{model}"]')


async def eta_seconds(page: Page) -> int:
    text = await last_reply(page).locator(".status-line .eta").inner_text()
    match = re.fullmatch(r"~(\d+) s", text)
    assert match, text
    return int(match.group(1))


async def test_a_cold_start_is_shown_stage_by_stage_and_an_eviction_is_named(
    kube: Kube, router: RouterProcess, page: Page
) -> None:
    # Real seconds: a 5 s load the model's own estimate knows, so the countdown has room to move.
    await apply(
        kube,
        router,
        "medium",
        load=5,
        vram=14,
        gpu_class="rtx3090",
        time_scale=1.0,
        warmup={"expectedSeconds": 5},
        tokens_per_second=8,
    )
    # Of higher priority, so it may unload medium though medium was just used.
    await apply(kube, router, "big", load=2, vram=20, gpu_class="rtx3090", time_scale=1.0, priority=1)
    await open_dashboard(page, router.url)
    await expect(card(page, "medium")).to_have_attribute("data-phase", "Cold", timeout=WAIT)

    await send(page, "medium", "Why is the sky blue?")
    status = last_reply(page).locator(".status-line")
    await expect(status).to_have_attribute("data-status", "loading", timeout=WAIT)
    await expect(status.locator(".stage")).to_contain_text("medium", timeout=WAIT)
    first = await eta_seconds(page)
    await page.wait_for_function(
        "first => { const e = document.querySelector('li.msg.assistant:last-child .status-line .eta');"
        " return e && Number(e.textContent.replace(/[^0-9]/g, '')) < first; }",
        arg=first,
        timeout=WAIT,
    )
    # Meanwhile the board and the GPU map follow, without a reload.
    await expect(card(page, "medium")).to_have_attribute("data-phase", "Loading", timeout=WAIT)
    await expect(page.locator('#gpus .slice[data-model="medium"]')).to_have_attribute(
        "data-phase", "Loading", timeout=WAIT
    )
    await shot(page, "1-warming")

    await expect(status).to_have_attribute("data-status", "generating", timeout=WAIT)
    await shot(page, "2-generating")
    summary = last_reply(page).locator(".summary")
    await expect(summary).to_contain_text("waited", timeout=WAIT)
    await expect(summary).to_contain_text("tokens/s")
    await expect(last_reply(page).locator(".reply")).not_to_be_empty()
    await expect(card(page, "medium")).to_have_attribute("data-phase", "Warm", timeout=WAIT)
    await expect(page.locator('#gpus .slice[data-model="medium"]')).to_have_attribute("data-phase", "Warm")
    await shot(page, "3-done")

    # big needs the card medium holds: the page names what is being unloaded. Every stage the
    # page shows is recorded, so a short eviction is not missed between two looks.
    await page.evaluate(
        """() => { window.stages = [];
        new MutationObserver(() => document.querySelectorAll('.status-line .stage')
            .forEach(s => window.stages.push(s.textContent)))
          .observe(document.getElementById('messages'), {subtree: true, childList: true}); }"""
    )
    await send(page, "big", "And the sunset?")
    await page.wait_for_function(
        "() => window.stages.some(s => s.includes('unloading medium'))", timeout=WAIT
    )
    await shot(page, "4-evicting")
    await expect(last_reply(page).locator(".summary")).to_contain_text("waited", timeout=WAIT)
    await expect(page.locator('#gpus .slice[data-model="big"]')).to_have_attribute(
        "data-phase", "Warm", timeout=WAIT
    )
    await expect(page.locator('#gpus .slice[data-model="medium"]')).to_have_count(0)
    await shot(page, "5-board")

    # The conversation survives a reload, and can be cleared.
    await page.reload()
    await expect(page.locator("li.msg.assistant .summary")).to_have_count(2, timeout=WAIT)
    await page.click("#clear")
    await expect(page.locator("li.msg")).to_have_count(0)


async def test_cancel_while_loading_ends_the_request_at_the_router(
    kube: Kube, router: RouterProcess, page: Page
) -> None:
    await apply(kube, router, "slow", load=120, vram=6, gpu_class="rtx3070", time_scale=1.0)
    await open_dashboard(page, router.url)
    await send(page, "slow", "hello?")
    status = last_reply(page).locator(".status-line")
    await expect(status).to_have_attribute("data-status", "loading", timeout=WAIT)
    await page.click("#cancel")
    await expect(last_reply(page)).to_have_attribute("data-state", "cancelled", timeout=WAIT)
    await expect(page.locator("#cancel")).to_be_disabled()

    async def counted() -> bool:
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{router.url}/metrics")).text
        return 'hearth_router_requests_total{model="slow",outcome="client_gone"} 1.0' in metrics

    await eventually(counted, what="the router to count the hang-up")
    assert "the client went away while loading" in router.logs()
    # The page is usable at once: the next message goes out without a reload.
    await page.fill("#prompt", "still there?")
    await page.press("#prompt", "Enter")
    await expect(last_reply(page).locator(".status-line")).to_have_attribute(
        "data-status", "loading", timeout=WAIT
    )
    await page.click("#cancel")


async def test_a_crash_mid_reply_shows_the_error_and_retry_gets_a_full_reply(
    kube: Kube, router: RouterProcess, page: Page
) -> None:
    faulty = sim_md("flaky", load=0.5, vram=6, gpu_class="rtx3070", time_scale=0.2)
    faulty["spec"]["env"] += [
        {"name": "HEARTH_SIM_FAILURE", "value": "crash-after-tokens"},
        {"name": "HEARTH_SIM_CRASH_AFTER_TOKENS", "value": "4"},
        # In the pod's /tmp (an emptyDir): it outlives the crash, as the container restarts in place.
        {"name": "HEARTH_SIM_FAIL_ONCE_MARKER", "value": "/tmp/crashed"},
    ]
    await kube.create(MD_API, MDS, "default", faulty)
    await wait_phase(kube, "flaky", "Cold")
    await open_dashboard(page, router.url)
    await send(page, "flaky", "tell me a story")
    error = last_reply(page).locator(".error")
    await expect(error).to_be_visible(timeout=WAIT)
    await expect(error).to_contain_text("the flaky engine at http://")
    await shot(page, "6-error")
    await error.locator("button.retry").click()
    await expect(last_reply(page).locator(".summary")).to_contain_text("tokens", timeout=WAIT)
    words = (await last_reply(page).locator(".reply").inner_text()).split()
    assert len(words) == 32, words
    await expect(page.locator("li.msg.assistant")).to_have_count(1)


async def test_model_output_is_rendered_as_text(kube: Kube, router: RouterProcess, page: Page) -> None:
    await apply(kube, router, "parrot", load=0.2, vram=6, gpu_class="rtx3070", time_scale=0.2)
    await open_dashboard(page, router.url)
    payload = '<script>window.pwned=1</script> <img src=x onerror="window.pwned=2"> **bold**'
    await send(page, "parrot", f"echo: {payload}")
    reply = last_reply(page).locator(".reply")
    await expect(last_reply(page).locator(".summary")).to_be_visible(timeout=WAIT)
    await expect(reply).to_contain_text("<script>window.pwned=1</script>")
    await expect(reply).to_contain_text('<img src=x onerror="window.pwned=2">')
    assert await reply.locator("script, img").count() == 0
    assert await reply.locator("strong").inner_text() == "bold"
    assert await page.evaluate("window.pwned") is None

    # Three quick messages: each waits its turn, and the replies come back in order.
    for word in ("first", "second", "third"):
        await page.fill("#prompt", f"echo: {word}")
        await page.press("#prompt", "Enter")
    await expect(page.locator("li.msg.assistant .summary")).to_have_count(4, timeout=WAIT)
    replies = await page.locator("li.msg.assistant .reply").all_inner_texts()
    assert [r.strip() for r in replies[1:]] == ["first", "second", "third"]


async def test_warm_up_now_and_unload_from_the_board(kube: Kube, router: RouterProcess, page: Page) -> None:
    await apply(kube, router, "lamp", load=0.5, vram=6, gpu_class="rtx3070", time_scale=0.5)
    await open_dashboard(page, router.url)
    model = card(page, "lamp")
    await expect(model).to_have_attribute("data-phase", "Cold", timeout=WAIT)
    await model.locator('[data-action="wake"]').click()
    await expect(model).to_have_attribute("data-phase", "Warm", timeout=WAIT)
    await expect(model.locator(".note")).to_have_text("Warm-up requested")
    await model.locator('[data-action="sleep"]').click()
    await expect(model).to_have_attribute("data-phase", "Cold", timeout=WAIT)
    await expect(model.locator(".model-message").first).to_contain_text("Unloaded on request")
    await expect(page.locator('#gpus .slice[data-model="lamp"]')).to_have_count(0)


# --- behind an Ingress path prefix, with an API key --------------------------------------------


async def prefix_proxy(upstream: str, prefix: str, port: int) -> web.AppRunner:
    """What an Ingress with a rewrite does: /prefix/x → upstream/x, streamed both ways."""
    session = ClientSession(timeout=ClientTimeout(total=None))

    async def forward(request: web.Request) -> web.StreamResponse:
        path = request.rel_url.path
        if not path.startswith(prefix):
            return web.Response(status=404, text="not under the prefix")
        target = upstream + (path[len(prefix) :] or "/")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with session.request(
            request.method, target, params=request.rel_url.query, headers=headers, data=await request.read()
        ) as answer:
            out = web.StreamResponse(
                status=answer.status,
                headers={
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() in ("content-type", "cache-control", "retry-after")
                },
            )
            await out.prepare(request)
            async for piece in answer.content.iter_any():
                await out.write(piece)
            await out.write_eof()
            return out

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_cleanup.append(lambda _: session.close())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def keyed_router(homelab: HomelabThread, tmp_path: Path) -> AsyncIterator[RouterProcess]:
    r = await asyncio.to_thread(lambda: RouterProcess(homelab, tmp_path, api_keys="sk-hearth-test").start())
    yield r
    await asyncio.to_thread(r.stop)


async def test_under_a_path_prefix_with_an_api_key(
    kube: Kube, router: RouterProcess, keyed_router: RouterProcess, browser: Browser
) -> None:
    await apply(kube, router, "tiny", load=0.2, vram=6, gpu_class="rtx3070", time_scale=0.2)
    port = free_port()
    proxy = await prefix_proxy(keyed_router.url, "/hearth", port)
    # A phone, in dark mode.
    context = await browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = await context.new_page()
    try:
        await page.goto(f"http://127.0.0.1:{port}/hearth")  # no trailing slash: still finds its files
        await expect(page.locator("#board-error")).to_contain_text("API key", timeout=WAIT)
        await expect(page.locator("#key-panel")).to_have_attribute("open", "")
        await shot(page, "7-needs-key")
        await page.fill("#api-key", "sk-hearth-test")
        await page.press("#api-key", "Enter")
        await expect(page.locator("#feed-state")).to_have_text("live", timeout=WAIT)
        await expect(card(page, "tiny")).to_be_visible(timeout=WAIT)
        await send(page, "tiny", "hi from a phone")
        await expect(last_reply(page).locator(".summary")).to_contain_text("tokens", timeout=WAIT)
        await shot(page, "8-phone-dark")
        # The key never shows in the router's log.
        assert "sk-hearth-test" not in keyed_router.logs()
    finally:
        await context.close()
        await proxy.cleanup()


async def test_the_keyboard_alone_sends_and_cancels(kube: Kube, router: RouterProcess, page: Page) -> None:
    await apply(kube, router, "keys", load=60, vram=6, gpu_class="rtx3070", time_scale=1.0)
    await open_dashboard(page, router.url)
    await expect(page.locator('#model option[value="keys"]')).to_have_count(1, timeout=WAIT)
    await page.focus("#model")
    await page.select_option("#model", "keys")
    await page.keyboard.press("Tab")  # to the Clear button
    await page.keyboard.press("Tab")  # into the message box
    await expect(page.locator("#prompt")).to_be_focused()
    await page.keyboard.type("line one")
    await page.keyboard.press("Shift+Enter")
    await page.keyboard.type("line two")
    await page.keyboard.press("Enter")
    await expect(page.locator("li.msg.user .bubble").last).to_have_text("line one\nline two")
    await expect(last_reply(page).locator(".status-line")).to_have_attribute(
        "data-status", "loading", timeout=WAIT
    )
    await page.keyboard.press("Tab")  # Send
    await page.keyboard.press("Tab")  # Cancel
    await expect(page.locator("#cancel")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(last_reply(page)).to_have_attribute("data-state", "cancelled", timeout=WAIT)

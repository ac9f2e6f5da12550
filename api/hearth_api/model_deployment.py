"""The ModelDeployment custom resource as types: the contract between operator, router and users.

Pure pydantic. The CRD YAML in deploy/crds/ is generated from these models (see crd.py).
Field names are Python's; aliases are the CRD's camelCase. The spec is here; the status types
are in model_status.py, imported here so this module stays the one import for the whole CR.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hearth_api.camel_model import CamelModel
from hearth_api.model_status import (
    MAX_WARMUP_SAMPLES as MAX_WARMUP_SAMPLES,
)
from hearth_api.model_status import (
    CacheStatus as CacheStatus,
)
from hearth_api.model_status import (
    Condition as Condition,
)
from hearth_api.model_status import (
    ConditionType as ConditionType,
)
from hearth_api.model_status import (
    DownloadStatus as DownloadStatus,
)
from hearth_api.model_status import (
    Eviction as Eviction,
)
from hearth_api.model_status import (
    ModelDeploymentStatus as ModelDeploymentStatus,
)
from hearth_api.model_status import (
    Phase as Phase,
)
from hearth_api.model_status import (
    Reason as Reason,
)
from hearth_api.model_status import (
    VramStatus as VramStatus,
)
from hearth_api.model_status import (
    WarmupStatus as WarmupStatus,
)
from hearth_api.weights_cache import BadSource, remote

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


class EnvVar(CamelModel):
    """A container environment variable, as in a Pod spec."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=253)]
    value: str | None = None
    value_from: dict[str, Any] | None = Field(
        default=None, description="As in a Pod spec (secretKeyRef, configMapKeyRef, ...)."
    )


class ModelSource(CamelModel):
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


class GpuRequest(CamelModel):
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


class Scaling(CamelModel):
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


class WarmupSpec(CamelModel):
    expected_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="Prior estimate of a cold start until real warmups have been measured.",
    )


class ModelDeploymentSpec(CamelModel):
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

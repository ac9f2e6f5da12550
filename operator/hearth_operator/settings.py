"""The operator's settings: `HEARTH_OPERATOR_<NAME>` environment variables (pydantic-settings),
or the command line's flags."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from hearth_api.model_deployment import HEARTH_IMAGE

ENV_PREFIX = "HEARTH_OPERATOR_"


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    namespace: str | None = Field(default=None, description="watch one namespace; unset: all")
    log_level: str = Field(
        default="INFO", validation_alias=AliasChoices(f"{ENV_PREFIX}LOG_LEVEL", "HEARTH_LOG_LEVEL")
    )
    load_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="a load not Ready after max(this, 5 warm-up estimates) is Failed and stopped",
    )
    metrics_host: str = Field(default="0.0.0.0", description="address of /metrics")
    metrics_port: int = Field(default=8080, ge=0, le=65535, description="port of /metrics; 0: none")
    liveness: str | None = Field(
        default=None, description="kopf's liveness endpoint, e.g. http://0.0.0.0:8081/healthz"
    )
    cache_claim: str | None = Field(
        default=None,
        description="the weights cache: a PersistentVolumeClaim of this name in each model's "
        "namespace, where Hearth downloads hf:// and https:// sources before the first start; "
        "unset (and no cache_host_path): the engines fetch their sources themselves",
    )
    cache_host_path: str | None = Field(
        default=None, description="the weights cache as a folder on the node (single-node homelabs)"
    )
    fetch_image: str = Field(default=HEARTH_IMAGE, description="the image the fetch Jobs run (Hearth's)")
    hf_token_secret: str | None = Field(
        default="hearth-hf-token",
        description="a Secret (key `token`) in the model's namespace with a Hugging Face token; optional",
    )
    hf_endpoint: str | None = Field(default=None, description="a Hugging Face mirror (HF_ENDPOINT)")
    ollama_registry: str = Field(
        default="https://registry.ollama.ai",
        description="where the manifests of ollama:// models are read for their VRAM estimate "
        "(registry.ollama.ai, or a mirror); empty: Ollama models are not read (gpu.vramGiB needed)",
    )
    estimate_vram: bool = Field(
        default=True,
        description="read the headers of llama.cpp's and vLLM's hf:// and https:// weights (a few MiB, "
        "by HTTP Range) to estimate their VRAM before any download; needs the operator to reach them",
    )

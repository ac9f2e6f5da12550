"""The router's settings: `HEARTH_ROUTER_<NAME>` environment variables (pydantic-settings), or
the command line's flags for the few a person types."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "HEARTH_ROUTER_"


def _comma_list(value: Any) -> Any:
    """`a,b , c` from the environment; lists as they are."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class RouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    host: str = "0.0.0.0"
    port: int = Field(default=8012, ge=0, le=65535)
    namespace: str | None = Field(default=None, description="watch one namespace; unset: all")
    log_level: str = Field(
        default="INFO", validation_alias=AliasChoices(f"{ENV_PREFIX}LOG_LEVEL", "HEARTH_LOG_LEVEL")
    )
    api_keys: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), description="comma separated; empty: no authentication"
    )
    api_keys_file: Path | None = Field(default=None, description="a mounted file of keys, one per line")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_header_bytes: int = Field(default=64 * 1024, ge=1024, description="all request headers together")
    max_waiters: int = Field(default=256, ge=1, description="requests waiting per model before 429")
    hold_timeout_min: float = Field(default=300.0, gt=0, description="seconds a request may wait for a load")
    hold_timeout_factor: float = Field(default=3.0, ge=0, description="... or this many estimates")
    stall_timeout: float = Field(default=60.0, gt=0, description="seconds without a byte from the engine")
    connect_timeout: float = Field(default=5.0, gt=0)
    unreachable_retry_seconds: float = Field(
        default=5.0,
        gt=0,
        description="an engine that refused a connection is tried again after this (3 tries in all)",
    )
    keepalive_interval: float = Field(default=15.0, gt=0)
    idle_connection_seconds: int = Field(
        default=100,
        ge=1,
        description="a kept-alive client connection with no request is closed after this: longer "
        "than the proxies' own idle timeouts (ingress-nginx 60 s, Traefik 90 s), so a proxy never "
        "sends a chat on a connection the router is just closing (a 502 for a POST)",
    )
    drain_seconds: float = Field(
        default=570.0,
        ge=0,
        description="on SIGTERM, how long the streams held may go on before they end with a "
        "'router is restarting' error (a 3090 load plus a long answer); the chart's grace is 30 s more",
    )
    loading_interval: float = Field(default=1.0, gt=0, description="seconds between loading events")
    activity_interval: float = Field(default=30.0, gt=0, description="min seconds between activity patches")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default=["*"], description="browser origins allowed to call the API (keys, not cookies, guard it)"
    )
    store_url: str | None = Field(
        default=None,
        description="redis:// or rediss:// URL of a Redis/Valkey every router replica shares "
        "(queues, slots, answer times, wake guard); unset: this process's own (one replica)",
    )
    store_prefix: str = Field(default="hearth", min_length=1, description="key prefix in the store")
    store_timeout: float = Field(
        default=2.0, gt=0, description="seconds a store step may take before this replica queues on its own"
    )
    store_lease_seconds: float = Field(
        default=5.0, gt=0, description="a dead replica's slots and places leave the line within this"
    )
    hide_status_summary: bool = Field(default=False, description="last Open WebUI status event hidden")

    _split = field_validator("api_keys", "cors_origins", mode="before")(_comma_list)

    @model_validator(mode="after")
    def _keys_file_readable(self) -> RouterSettings:
        """A keys file that cannot be read stops the router at start, naming it (later changes
        are picked up by `keys.KeyRing`)."""
        if self.api_keys_file is not None:
            try:
                self.api_keys_file.read_text()
            except OSError as exc:
                raise ValueError(f"api_keys_file {self.api_keys_file}: {exc.strerror or exc}") from None
        return self

    def hold_timeout(self, estimate: float | None) -> float:
        return max(self.hold_timeout_min, self.hold_timeout_factor * (estimate or 0.0))

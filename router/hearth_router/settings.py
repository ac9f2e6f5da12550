"""The router's settings, from the environment (HEARTH_ROUTER_*) or flags."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class RouterSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = "0.0.0.0"
    port: int = Field(default=8012, ge=0, le=65535)
    namespace: str | None = Field(default=None, description="watch one namespace; None: all")
    api_keys: frozenset[str] = Field(default=frozenset(), description="empty: no authentication")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_waiters: int = Field(default=256, ge=1, description="requests waiting per model before 429")
    hold_timeout_min: float = Field(default=300.0, gt=0, description="seconds a request may wait for a load")
    hold_timeout_factor: float = Field(default=3.0, ge=0, description="... or this many estimates")
    stall_timeout: float = Field(default=60.0, gt=0, description="seconds without a byte from the engine")
    connect_timeout: float = Field(default=5.0, gt=0)
    keepalive_interval: float = Field(default=15.0, gt=0)
    loading_interval: float = Field(default=1.0, gt=0, description="seconds between loading events")
    activity_interval: float = Field(default=30.0, gt=0, description="min seconds between activity patches")
    cors_origins: list[str] = Field(
        default=["*"], description="browser origins allowed to call the API (keys, not cookies, guard it)"
    )
    hide_status_summary: bool = Field(default=False, description="last Open WebUI status event hidden")

    def hold_timeout(self, estimate: float | None) -> float:
        return max(self.hold_timeout_min, self.hold_timeout_factor * (estimate or 0.0))


def api_keys_from_env(env: dict[str, str] | None = None) -> frozenset[str]:
    """Keys from HEARTH_API_KEYS (comma separated) and/or a mounted file (one per line)."""
    env = dict(os.environ) if env is None else env
    keys = {k.strip() for k in env.get("HEARTH_API_KEYS", "").split(",") if k.strip()}
    path = env.get("HEARTH_API_KEYS_FILE")
    if path:
        keys |= {line.strip() for line in Path(path).read_text().splitlines() if line.strip()}
    return frozenset(keys)

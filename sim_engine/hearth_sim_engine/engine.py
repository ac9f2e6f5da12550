"""The simulated engine's settings and its one piece of state, the model's load: how long it
takes, how it fails (the failure modes real engines show), and which real engine it behaves
like (its personality)."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("hearth.sim.engine")


class Failure(enum.StrEnum):
    NONE = "none"
    NEVER_READY = "never-ready"  # health stays 503 forever
    FAIL_LOAD = "fail-load"  # the process exits half way through loading
    CRASH_AFTER_TOKENS = "crash-after-tokens"  # the process exits mid-stream
    STALL_AFTER_TOKENS = "stall-after-tokens"  # the stream stops, the connection stays open


class Personality(enum.StrEnum):
    SIM = "sim"
    LLAMACPP = "llamacpp"
    VLLM = "vllm"
    OLLAMA = "ollama"


class EngineSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    model: str = "sim"
    personality: Personality = Personality.SIM
    served_names: tuple[str, ...] = Field(
        default=(), description="vllm: the names it answers to (--served-model-name); default: model"
    )
    load_seconds: float = Field(default=5.0, ge=0)
    load_jitter: float = Field(default=0.0, ge=0, le=1, description="± fraction of load time")
    tokens_per_second: float = Field(default=40.0, gt=0)
    time_scale: float = Field(default=1.0, gt=0, description="multiplies every delay")
    failure: Failure = Failure.NONE
    crash_after_tokens: int = Field(default=3, ge=0)
    fail_once_marker: Path | None = Field(
        default=None,
        description="with a mid-stream failure: fail only while this file is absent, and create it "
        "(a fault the restart clears, as most real crashes are)",
    )
    seed: int | None = None
    weights: Path | None = Field(
        default=None,
        description="a file or folder of weights to load: missing, the load fails (exit 1) as a "
        "real engine's does, so a test sees that the engine found what the fetch left",
    )

    def failure_due(self) -> bool:
        if self.fail_once_marker is None:
            return True
        if self.fail_once_marker.exists():
            return False
        self.fail_once_marker.touch()
        return True

    def load_duration(self) -> float:
        """Real seconds this load will take, jitter drawn once per process."""
        rng = random.Random(self.seed)
        jitter = rng.uniform(-self.load_jitter, self.load_jitter) if self.load_jitter else 0.0
        return self.load_seconds * (1 + jitter) * self.time_scale

    @property
    def token_interval(self) -> float:
        return self.time_scale / self.tokens_per_second

    @property
    def names(self) -> tuple[str, ...]:
        return self.served_names or (self.model,)


def settings_from_env(env: Mapping[str, str], **fixed: Any) -> EngineSettings:
    """EngineSettings from `HEARTH_SIM_<FIELD>` variables — how a container of a simulated
    image (vLLM's, Ollama's) is told its load time, speed and faults — with `fixed` on top."""
    values = {
        name: env[f"HEARTH_SIM_{name.upper()}"]
        for name in EngineSettings.model_fields
        if f"HEARTH_SIM_{name.upper()}" in env
    }
    return EngineSettings.model_validate({**values, **fixed})


def exit_now(code: int) -> None:
    """Die like a crashed engine: no cleanup, connections dropped."""
    logging.shutdown()
    os._exit(code)


class EngineState:
    """What the engine is doing: loading, or loaded. One per process."""

    def __init__(self, settings: EngineSettings, exit_fn: Callable[[int], None]) -> None:
        self.settings = settings
        self.loaded = asyncio.Event()
        self.started = time.time()
        self.active_streams = 0
        self.peak_streams = 0  # the most ever in flight at once: what a router let through
        self.streams_closed = 0
        self.exit = exit_fn

    async def load(self) -> None:
        duration = self.settings.load_duration()
        log.info("loading %s for %.2fs", self.settings.model, duration)
        weights = self.settings.weights
        if weights is not None and not weights.exists():
            log.error("loading %s failed: no weights at %s", self.settings.model, weights)
            self.exit(1)
            return
        if self.settings.failure is Failure.FAIL_LOAD:
            await asyncio.sleep(duration / 2)
            log.error("loading %s failed: out of memory (simulated)", self.settings.model)
            self.exit(3)
            return
        if self.settings.failure is Failure.NEVER_READY:
            return
        await asyncio.sleep(duration)
        self.loaded.set()
        log.info("loaded %s", self.settings.model)

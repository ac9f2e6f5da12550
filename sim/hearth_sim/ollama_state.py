"""Simulated Ollama's state: its settings (from the same environment as the real server's),
the models in its store, the one model loaded and when it unloads, and what a pull does (a real
download from the homelab's registry, or a timed stand-in). The HTTP API and the CLI are
ollama.py's."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from hearth_sim import ollama_registry
from hearth_sim_engine.engine import EngineSettings, EngineState, Failure, Personality, settings_from_env

log = logging.getLogger("hearth.sim.ollama")

VERSION = "0.12.6"
DEFAULT_PORT = 11434
DEFAULT_KEEP_ALIVE = 300.0
PULL_BYTES = 400_000_000  # what a pull "downloads", reported in its progress


def parse_duration(value: str | int | float | None) -> float | None:
    """Ollama's keep-alive: seconds as a number, or a Go duration ("5m", "1h30m", "30s");
    negative means forever (None)."""
    if value is None or value == "":
        return DEFAULT_KEEP_ALIVE
    if isinstance(value, int | float):
        return None if value < 0 else float(value)
    raw = value.strip()
    try:
        number = float(raw)
    except ValueError:
        parts = re.findall(r"(-?\d+(?:\.\d+)?)(ms|s|m|h)", raw)
        if not parts or "".join(n + u for n, u in parts) != raw:
            raise ValueError(f"invalid duration {value!r}") from None
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        number = sum(float(n) * units[u] for n, u in parts)
    return None if number < 0 else number


def parse_host(value: str | None) -> tuple[str, int]:
    """OLLAMA_HOST: "host", "host:port" or "http://host:port"; default 127.0.0.1:11434."""
    raw = (value or "").strip().removeprefix("http://").removeprefix("https://").rstrip("/")
    if not raw:
        return "127.0.0.1", DEFAULT_PORT
    host, _, port = raw.rpartition(":") if ":" in raw else (raw, "", "")
    return host or "127.0.0.1", int(port) if port else DEFAULT_PORT


class OllamaSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    keep_alive: float | None = DEFAULT_KEEP_ALIVE  # seconds; None: never unload
    num_parallel: int = 1
    context_length: int | None = None
    pull_seconds: float = 1.0  # a pull's simulated download time (before time_scale)
    pulled: tuple[str, ...] = ()  # already in the store at start
    registry: str | None = None  # where registry.ollama.ai is (HEARTH_SIM_OLLAMA_REGISTRY)
    models: Path | None = None  # the store on disk (OLLAMA_MODELS); None: in memory only
    engine: EngineSettings = EngineSettings()

    @classmethod
    def from_env(
        cls, env: dict[str, str] | None = None, engine: EngineSettings | None = None
    ) -> OllamaSettings:
        env = dict(os.environ if env is None else env)
        host, port = parse_host(env.get("OLLAMA_HOST"))
        context = env.get("OLLAMA_CONTEXT_LENGTH")
        registry = env.get("HEARTH_SIM_OLLAMA_REGISTRY") or None
        models = env.get("OLLAMA_MODELS") or None
        if models is None and registry is not None:  # Ollama's default store
            models = str(Path(env.get("HOME") or Path.home()) / ".ollama" / "models")
        return cls(
            host=host,
            port=port,
            keep_alive=parse_duration(env.get("OLLAMA_KEEP_ALIVE")),
            num_parallel=int(env.get("OLLAMA_NUM_PARALLEL") or 1),
            context_length=int(context) if context else None,
            pull_seconds=float(env.get("HEARTH_SIM_PULL_SECONDS") or 1.0),
            registry=registry,
            models=Path(models) if models else None,
            engine=engine or settings_from_env(env, personality=Personality.OLLAMA),
        )


@dataclass
class Stored:
    digest: str
    size: int
    modified: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


def _digest(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def tag(name: str) -> str:
    """Ollama's name for a model: `mistral` is `mistral:latest`."""
    return ollama_registry.Name.parse(name).display


class OllamaState:
    """The store, the one loaded model, and the keep-alive timer that unloads it."""

    def __init__(self, settings: OllamaSettings, exit_fn: Callable[[int], None]) -> None:
        self.settings = settings
        self.store: dict[str, Stored] = {tag(n): Stored(_digest(n), PULL_BYTES) for n in settings.pulled}
        self.disk = ollama_registry.Disk(settings.models) if settings.models else None
        self.engine = EngineState(settings.engine, exit_fn)  # pacing and failures of generation
        self.loaded: str | None = None
        self.loads = 0  # how many times a model was loaded (tests: an unload then a reload)
        self.expires: float | None = None  # monotonic time the loaded model unloads; None: never
        self._loading: asyncio.Task[None] | None = None
        self._loading_name: str | None = None
        self.in_flight = 0
        self._timer: asyncio.TimerHandle | None = None

    def scaled(self, seconds: float) -> float:
        return seconds * self.settings.engine.time_scale

    def find(self, name: str) -> Stored | None:
        """A model of the store: pulled by this server, or found in the store on disk."""
        key = tag(name)
        if key not in self.store and self.disk is not None:
            manifest = self.disk.manifest(ollama_registry.Name.parse(key))
            if manifest is not None:
                size = ollama_registry.size_of(manifest)
                self.store[key] = Stored(ollama_registry.model_digest(manifest), size)
        return self.store.get(key)

    def names(self) -> list[str]:
        on_disk = {n.display for n in self.disk.names()} if self.disk is not None else set()
        return sorted(set(self.store) | on_disk)

    def copy(self, source: str, destination: str) -> bool:
        found = self.find(source)
        if found is None:
            return False
        self.store[tag(destination)] = Stored(found.digest, found.size)
        manifest = self.disk.manifest(ollama_registry.Name.parse(source)) if self.disk else None
        if self.disk is not None and manifest is not None:
            self.disk.write(ollama_registry.Name.parse(destination), manifest)
        return True

    async def load(self, name: str) -> None:
        """Load `name` if it is not the loaded model; concurrent callers share one load."""
        if self.loaded == name and self._loading is None:
            return
        if self._loading is None or self._loading_name != name:
            self._loading_name = name
            self._loading = asyncio.create_task(self._load(name))
        task = self._loading
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._loading is task:
                self._loading = None

    async def _load(self, name: str) -> None:
        self.loaded = None  # one model at a time: the old one goes first
        self.engine.loaded.clear()
        duration = self.settings.engine.load_duration()
        log.info("loading %s for %.2fs", name, duration)
        if self.settings.engine.failure is Failure.FAIL_LOAD:
            await asyncio.sleep(duration / 2)
            log.error("loading %s failed: out of memory (simulated)", name)
            self.engine.exit(3)
            return
        if self.settings.engine.failure is Failure.NEVER_READY:
            await asyncio.Event().wait()
        await asyncio.sleep(duration)
        self.loaded, self.loads = name, self.loads + 1
        self.engine.loaded.set()
        log.info("loaded %s", name)

    def begin(self) -> None:
        self.in_flight += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.expires = None

    def end(self, keep_alive: float | None) -> None:
        """A request is over: with none left, the model unloads after `keep_alive`."""
        self.in_flight -= 1
        if self.in_flight or self.loaded is None or keep_alive is None:
            return
        delay = self.scaled(keep_alive)
        self.expires = time.monotonic() + delay
        self._timer = asyncio.get_running_loop().call_later(delay, self.unload)

    def unload(self) -> None:
        if self.in_flight == 0 and self.loaded is not None:
            log.info("unloading %s: keep_alive expired", self.loaded)
            self.loaded, self.expires = None, None
            self.engine.loaded.clear()


async def registry_pull(state: OllamaState, name: str) -> AsyncIterator[dict[str, Any]]:
    assert state.disk is not None
    wanted = ollama_registry.Name.parse(name)
    async for line in ollama_registry.pull(state.disk, wanted, state.settings.registry):
        if line.get("status") == "success":
            state.store.pop(name, None)
            state.find(name)  # now on disk
        yield line


async def timed_pull(state: OllamaState, name: str) -> AsyncIterator[bytes]:
    """Ollama's pull progress: manifest, one layer downloading, verify, success."""
    yield b'{"status":"pulling manifest"}\n'
    digest = _digest(name)
    steps = 4
    for step in range(1, steps + 1):
        await asyncio.sleep(state.scaled(state.settings.pull_seconds) / steps)
        done = PULL_BYTES * step // steps
        line = {"status": f"pulling {digest[7:19]}", "digest": digest, "total": PULL_BYTES, "completed": done}
        yield json.dumps(line).encode() + b"\n"
    yield b'{"status":"verifying sha256 digest"}\n'
    yield b'{"status":"writing manifest"}\n'
    state.store[name] = Stored(digest, PULL_BYTES)
    yield b'{"status":"success"}\n'

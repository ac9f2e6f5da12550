"""`hearth-sim-engine`: the simulated engine, configured by flags or HEARTH_SIM_<FLAG> variables."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hearth_sim_engine.engine import EngineSettings, Failure, Personality
from hearth_sim_engine.server import serve

ENV_PREFIX = "HEARTH_SIM_"
# Ollama's personality is the simulated homelab's Ollama image, built on this engine.
PERSONALITIES = [p.value for p in Personality if p is not Personality.OLLAMA]


def _env(name: str, default: Any) -> Any:
    """Flags default to HEARTH_SIM_<NAME> so a container can be configured by env alone."""
    return os.environ.get(ENV_PREFIX + name.upper(), default)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hearth-sim-engine", description=__doc__)
    d = EngineSettings()
    p.add_argument("--host", default=_env("host", d.host))
    p.add_argument("--port", type=int, default=_env("port", d.port))
    p.add_argument("--model", default=_env("model", d.model), help="served model name")
    p.add_argument(
        "--personality",
        choices=PERSONALITIES,
        default=_env("personality", d.personality.value),
        help="behave like this engine while loading and when refusing (see hearth_sim_engine.server)",
    )
    p.add_argument("--load-seconds", type=float, default=_env("load_seconds", d.load_seconds))
    p.add_argument(
        "--load-jitter",
        type=float,
        default=_env("load_jitter", d.load_jitter),
        help="± fraction of the load time, drawn once per start",
    )
    p.add_argument("--tokens-per-second", type=float, default=_env("tokens_per_second", d.tokens_per_second))
    p.add_argument(
        "--time-scale",
        type=float,
        default=_env("time_scale", d.time_scale),
        help="multiplies every delay (0.1 = ten times faster)",
    )
    p.add_argument("--failure", choices=[f.value for f in Failure], default=_env("failure", d.failure.value))
    p.add_argument(
        "--crash-after-tokens",
        type=int,
        default=_env("crash_after_tokens", d.crash_after_tokens),
        help="with --failure crash-/stall-after-tokens: tokens sent before it fails",
    )
    p.add_argument(
        "--fail-once-marker",
        type=Path,
        default=_env("fail_once_marker", None),
        help="with a mid-stream failure: fail only while this file is absent, then create it",
    )
    p.add_argument("--seed", type=int, default=_env("seed", None))
    p.add_argument(
        "--weights", type=Path, default=_env("weights", None), help="weights to load: missing, the load fails"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    fields = EngineSettings.model_fields
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    try:
        settings = EngineSettings.model_validate(values)
    except ValidationError as exc:
        print(f"hearth-sim-engine: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    print(
        f"hearth-sim-engine: serving {settings.model} on http://{settings.host}:{settings.port}"
        f" (load {settings.load_seconds}s x{settings.time_scale}, failure={settings.failure})",
        flush=True,
    )
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""vLLM's OpenAI server, simulated: what the `vllm/vllm-openai` image runs in the homelab.

It takes vLLM's own command line (`vllm serve`'s flags, as the operator renders them) and
rejects what vLLM would reject — an unknown flag, a `--gpu-memory-utilization` outside (0, 1],
`--max-num-seqs` below 1 — with vLLM's exit code 2, so a manifest the real server would refuse
fails here too. Then it behaves as vLLM does while loading: nothing listens until the engine is
up (see the `vllm` personality in `hearth_sim_engine.server`). Load time, speed and failures
come from the `HEARTH_SIM_*` environment, as for the sim engine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from hearth_sim_engine.engine import EngineSettings, Personality, settings_from_env
from hearth_sim_engine.server import serve


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vllm serve", description="vLLM OpenAI server (simulated)")
    p.add_argument("model_tag", nargs="?", help="the model, as `vllm serve MODEL`")
    p.add_argument("--model")
    p.add_argument("--served-model-name", nargs="+")
    p.add_argument("--host")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--gpu-memory-utilization", type=_fraction, default=0.9)
    p.add_argument("--max-num-seqs", type=_positive, default=256)
    p.add_argument("--max-model-len", type=_positive)
    p.add_argument("--tensor-parallel-size", type=_positive, default=1)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--quantization")
    p.add_argument("--download-dir")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--enable-prefix-caching", action="store_true")
    return p


def settings_from(argv: list[str], env: dict[str, str] | None = None) -> EngineSettings:
    env = dict(os.environ if env is None else env)
    args = parser().parse_args(argv)
    model = args.model or args.model_tag
    if not model:
        parser().error("a model is required: `vllm serve MODEL` or --model MODEL")
    names = tuple(args.served_model_name or [model])

    return settings_from_env(
        env,
        host=args.host or env.get("HEARTH_SIM_HOST", "0.0.0.0"),
        port=args.port,
        model=names[0],
        served_names=names,
        personality=Personality.VLLM,
    )


def main(argv: list[str]) -> int:
    settings = settings_from(argv)
    print(f"vllm (simulated): loading {settings.model}; the port opens once it is up", flush=True)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

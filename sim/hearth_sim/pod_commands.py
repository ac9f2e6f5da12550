"""Which command an image's container runs here, as the pod's runtime: Hearth's image as its
console scripts (or as a real container of the image, through podman), llama.cpp's server
image as the real llama.cpp server from PyPI, Valkey's and Redis's images as the machine's
redis-server, vLLM's and Ollama's images as simulations with
their own command line; anything else cannot run, and says what can."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hearth_sim import podman
from hearth_sim.llamacpp import IMAGE_REPO as LLAMACPP_REPO
from hearth_sim.llamacpp import is_server_image
from hearth_sim.node import Node
from hearth_sim.pod_spec import HEARTH_IMAGE_REPO, CannotRun, hearth_command, image_repo, localize

Obj = dict[str, Any]
# Hearth's programs that run as containers of its image where the machine can run them (the sim
# engine stays a process, like every engine: the image is what this is about, not the engines).
CONTAINED_COMMANDS = ("hearth-operator", "hearth-router", "hearth-fetch")
# Engines that cannot run here, simulated with their own command line and behaviour while loading.
SIMULATED_IMAGES = {"vllm/vllm-openai": "hearth_sim.vllm", "ollama/ollama": "hearth_sim.ollama"}
SIMULATED_DEFAULT_ARGS = {"ollama/ollama": ["serve"]}  # the image's CMD
# The routers' shared store (the chart's Valkey, or a Redis): the machine's own server, which
# takes the same command line (Valkey is Redis's fork) — Debian's redis-server.
STORE_IMAGES = ("valkey/valkey", "redis")
STORE_SERVERS = ("valkey-server", "redis-server")  # whichever the machine has, Valkey's first


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # what the runtime itself needs set
    contained: podman.Runtime | None = None  # set: argv is the image's own, run in podman


def tool_shims(folder: Path) -> Path:
    """A folder of the command-line tools simulated images hold (`ollama`), for exec probes:
    put first on such a container's PATH, `ollama pull …` runs the simulated client."""
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "ollama"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m hearth_sim.ollama "$@"\n')
    shim.chmod(0o755)
    return folder


def store_argv(container: Obj, ip: str, local: Callable[[str], str]) -> list[str]:
    """The store's command line with the machine's server: the container's own arguments, then
    `--bind` to the pod's address (in its own network namespace a server listens on all of them;
    here that would be every pod's, and the host's)."""
    given = [*(container.get("command") or []), *(container.get("args") or [])]
    if given and Path(given[0]).name in STORE_SERVERS:
        given = given[1:]
    server = next((found for name in STORE_SERVERS if (found := shutil.which(name))), None)
    if server is None:
        raise CannotRun("neither valkey-server nor redis-server is installed on this machine")
    return [server, *(local(a) for a in given), "--bind", ip]


async def command_for(node: Node, container: Obj, ip: str, mounts: dict[str, str], main: bool) -> Command:
    """What runs for `container` (`main`: the pod's own container, not a sidecar — only it may
    run in podman)."""
    image = str(container.get("image", ""))

    def local(value: str) -> str:
        return localize(value, ip, mounts)

    try:
        if image.split(":")[0] == HEARTH_IMAGE_REPO:
            argv = hearth_command(container)
            contained = await node.container_runtime() if main else None
            if contained is not None and Path(argv[0]).name in CONTAINED_COMMANDS:
                given = [*(container.get("command") or []), *(container.get("args") or [])]
                return Command([localize(a, ip, {}) for a in given], contained=contained)
            return Command([argv[0], *(local(a) for a in argv[1:])])
        if is_server_image(image) and not container.get("command"):
            runtime, note = await node.llamacpp()
            if runtime is None:
                raise CannotRun(note)
            return Command(runtime.argv([local(a) for a in container.get("args") or []]), runtime.env)
        if image_repo(image) in STORE_IMAGES:
            return Command(store_argv(container, ip, local))
        module = SIMULATED_IMAGES.get(image_repo(image))
        if module is not None and not container.get("command"):
            given = container.get("args") or SIMULATED_DEFAULT_ARGS.get(image_repo(image), [])
            shims = tool_shims(node.config.log_dir.parent / "bin")
            path = f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"
            return Command([sys.executable, "-m", module, *(local(a) for a in given)], {"PATH": path})
        raise CannotRun(
            f"only {HEARTH_IMAGE_REPO} (hearth-sim, hearth-operator, hearth-router), "
            f"{LLAMACPP_REPO}:server* (llama.cpp's server, from PyPI), "
            f"{' and '.join(STORE_IMAGES)} (this machine's redis-server) and, simulated, "
            f"{' and '.join(SIMULATED_IMAGES)} run here"
        )
    except CannotRun as exc:
        raise CannotRun(f"{container.get('name')} ({image!r}): {exc}") from exc

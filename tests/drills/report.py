"""Refresh docs/reliability.md's table, and the README's summary of it, from the drills' saved
results (`make reliability` runs the drills, then this). Each table sits between two markers;
everything else in the pages is left as it is."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from .record import Drill, load_all

ROOT = Path(__file__).parents[2]
README = ROOT / "docs" / "reliability.md"  # the drills' page: the whole table
FRONT = ROOT / "README.md"  # the front door: one line per drill
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"


def table(drills: list[Drill]) -> str:
    rows = [
        "| drill | injected | times | streams lost | hung | 5xx | what held |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in drills:
        counts = f"{d.times} | {d.streams_lost} | {d.hung} | {d.server_errors}"
        rows.append(f"| {d.title} | {d.injected} | {counts} | {d.checked} |")
    return "\n".join(rows)


def summary(drills: list[Drill]) -> str:
    rows = ["| drill | times | streams lost | hung | 5xx |", "|---|---|---|---|---|"]
    rows += [f"| {d.title} | {d.times} | {d.streams_lost} | {d.hung} | {d.server_errors} |" for d in drills]
    return "\n".join(rows)


def refresh(readme: str, drills: list[Drill], render: Callable[[list[Drill]], str] = table) -> str:
    head, found, rest = readme.partition(START)
    if not found or END not in rest:
        raise SystemExit(f"a page has no {START} … {END} section")
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{render(drills)}\n{END}{tail}"


def main() -> int:
    drills = load_all()
    if not drills:
        print("no drill results under .hearth/reliability/: run `make reliability`", file=sys.stderr)
        return 1
    README.write_text(refresh(README.read_text(), drills))
    FRONT.write_text(refresh(FRONT.read_text(), drills, summary))
    print(f"{README.name} and {FRONT.name}: {len(drills)} drills")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Refresh docs/reliability.md's table from the drills' saved results (`make reliability`
runs the drills, then this). The table sits between two markers; everything else in the page
is left as it is."""

from __future__ import annotations

import sys
from pathlib import Path

from .record import Drill, load_all

README = Path(__file__).parents[2] / "docs" / "reliability.md"
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


def refresh(readme: str, drills: list[Drill]) -> str:
    head, found, rest = readme.partition(START)
    if not found or END not in rest:
        raise SystemExit(f"{README} has no {START} … {END} section")
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table(drills)}\n{END}{tail}"


def main() -> int:
    drills = load_all()
    if not drills:
        print("no drill results under .hearth/reliability/: run `make reliability`", file=sys.stderr)
        return 1
    README.write_text(refresh(README.read_text(), drills))
    print(f"{README.name}: {len(drills)} drills")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The documentation's benchmark tables, generated: `make bench` keeps its run in
docs/bench.json and fills every `<!-- bench:KEY -->` … `<!-- /bench -->` block of the docs and
the README with that table as measured (KEY: the benchmark's name, `-2`, `-3` … for its later
tables; `goals` is derived from them, goals.py).
tests/unit/test_bench_pages.py fails when a block differs from what docs/bench.json renders
(a table typed by hand, or a renderer changed without a rerun), or when the run is missing a
benchmark `make bench` has."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from . import goals

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RESULTS = DOCS / "bench.json"
BLOCK = re.compile(r"(<!-- bench:(?P<key>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench -->)", re.S)


def keyed(name: str, index: int) -> str:
    return name if index == 0 else f"{name}-{index + 1}"


def cell(v: Any) -> str:
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def markdown(table: dict[str, Any], meta: dict[str, Any]) -> str:
    """One table as a docs page shows it: its title, the table, its notes, and the run."""
    cells = [table["columns"], *[[cell(v) for v in row] for row in table["rows"]]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(table["columns"]))]
    lines = [f"*{table['title']}*", ""]
    lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells[1:]]
    lines += [""] + [f"- {n}" for n in table["notes"]]
    machine = meta.get("machine") or {}
    lines += [
        "",
        f"<small>`make bench`, {meta.get('when')}: {machine.get('cpu', '?')}, "
        f"{machine.get('cores', '?')} cores.</small>",
        "",
    ]
    return "\n".join(lines)


def tables_by_key(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["key"]: t for t in results["tables"]}


def derived(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Tables made from the run's own (not measured themselves): the README's goals."""
    return {"goals": goals.table(tables_by_key(results))}


def fill(text: str, results: dict[str, Any]) -> str:
    """`text` with every bench block rendered from `results` (blocks of unknown keys kept)."""
    tables = tables_by_key(results) | derived(results)

    def render(m: re.Match[str]) -> str:
        table = tables.get(m["key"])
        body = markdown(table, results["meta"]) if table is not None else m["body"]
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(render, text)


def pages() -> list[Path]:
    found = [*DOCS.glob("*.md"), ROOT / "README.md"]
    return sorted(p for p in found if BLOCK.search(p.read_text()))


def write(results: dict[str, Any]) -> list[Path]:
    """Keep the run and fill the pages; the pages written."""
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    written = []
    for page in pages():
        text = page.read_text()
        filled = fill(text, results)
        if filled != text:
            page.write_text(filled)
            written.append(page)
    return written

"""docs/reliability.md's table, and the README's summary of it, are produced from the drills'
results, never typed: each has the generated header, one row per drill defined in tests/drills/,
and 0 in every failure column."""

from __future__ import annotations

import re
from pathlib import Path

from tests.drills.report import END, FRONT, README, START, summary, table

DRILLS = Path(__file__).parents[1] / "drills"


def rows(page: Path = README, header: str = table([])) -> list[list[str]]:
    section = page.read_text().split(START, 1)[1].split(END, 1)[0].strip().splitlines()
    assert section[:2] == header.splitlines(), f"{page.name}: the table's header is not the generated one"
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in section[2:]]


def test_every_drill_has_a_row_and_every_row_a_drill() -> None:
    defined = {
        title
        for path in DRILLS.glob("test_*.py")
        for title in re.findall(r'Drill\(\s*"[^"]+",\s*"([^"]+)"', path.read_text())
    }
    assert defined, "no drills found"
    assert {row[0] for row in rows()} == defined, "run `make reliability` to refresh docs/reliability.md"
    front = {row[0] for row in rows(FRONT, summary([]))}
    assert front == defined, "run `make reliability` to refresh the README's table"


def test_no_row_reports_a_failure() -> None:
    for row in rows():
        assert len(row) == 7, row
        assert int(row[2]) > 0 and row[3:6] == ["0", "0", "0"], row
    for row in rows(FRONT, summary([])):
        assert len(row) == 5 and int(row[1]) > 0 and row[2:] == ["0", "0", "0"], row

"""docs/reliability.md's table is produced from the drills' results, never typed: it has the
generated header, one row per drill defined in tests/drills/, and 0 in every failure column."""

from __future__ import annotations

import re
from pathlib import Path

from tests.drills.report import END, README, START, table

DRILLS = Path(__file__).parents[1] / "drills"


def rows() -> list[list[str]]:
    section = README.read_text().split(START, 1)[1].split(END, 1)[0].strip().splitlines()
    assert section[:2] == table([]).splitlines(), "the table's header is not the generated one"
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in section[2:]]


def test_every_drill_has_a_row_and_every_row_a_drill() -> None:
    defined = {
        title
        for path in DRILLS.glob("test_*.py")
        for title in re.findall(r'Drill\(\s*"[^"]+",\s*"([^"]+)"', path.read_text())
    }
    assert defined, "no drills found"
    assert {row[0] for row in rows()} == defined, "run `make reliability` to refresh docs/reliability.md"


def test_no_row_reports_a_failure() -> None:
    for row in rows():
        assert len(row) == 7, row
        assert int(row[2]) > 0 and row[3:6] == ["0", "0", "0"], row

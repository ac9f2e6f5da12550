"""The README's goals table (tests/bench/goals.py) says met or missed, and by how much, from the
benchmarks' own rows."""

from __future__ import annotations

from typing import Any

from tests.bench import goals

OVERHEAD_COLUMNS = ["concurrency", "path", "streams", "TTFT p50 ms", "added p50", "added p99"]
OVERHEAD_COLUMNS += ["total p50 ms", "added p50", "added p99", "tokens/s", "x direct", "router CPU ms/req"]
P99 = "first event after the request was sent, p99 ms"


def run(added: float, ratio: float, burst: float) -> dict[str, dict[str, Any]]:
    def row(c: int, path: str, added_p50: float, x: float) -> list[Any]:
        # TTFT's "added p50" first, the total's second: the goal reads the first.
        return [c, path, "1/1", 2.0, added_p50, 1.0, 5.0, 99.0, 1.0, 1000.0, x, 1.5]

    overhead = [row(c, "hearth", added, ratio) for c in (1, 50, 200)]
    overhead += [row(c, "litellm", added * 10, 0.1) for c in (1, 50, 200)]
    return {
        "overhead": {"columns": OVERHEAD_COLUMNS, "rows": overhead},
        "herd": {"rows": [[P99, burst, "≤ 50"], [f"{P99}, the 1000 over 1 s", 20.0, "≤ 50"]]},
        "replicas": {"rows": [[P99, burst, burst * 1.4, 1.4]]},
        "frontdoor": {"rows": [[f"herd: {P99}", burst, burst * 0.6, 0.6]]},
    }


def verdicts(tables: dict[str, dict[str, Any]]) -> list[str]:
    return [row[2] for row in goals.table(tables)["rows"]]


def test_goals_met_say_so() -> None:
    assert verdicts(run(added=0.8, ratio=0.95, burst=40)) == ["met"] * 5


def test_goals_missed_say_by_how_much() -> None:
    missed = verdicts(run(added=1.5, ratio=0.6, burst=750))
    assert missed[0] == "**missed**, by 0.5 ms"
    assert missed[1] == "**missed**, 0.30x short at worst"
    assert missed[2] == "met"  # LiteLLM adds 10x: the goal is 8x
    assert missed[3] == "**missed**, 15x the goal with one router"
    assert missed[4] == "met"

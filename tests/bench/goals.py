"""The README's table of issue 25's performance goals against the last whole `make bench` run
(docs/bench.json), derived from the benchmarks' own tables — so the front door's figures are as
generated as the docs' tables and never outlive the run they came from. Pure."""

from __future__ import annotations

from typing import Any

Row = list[Any]


def _by_first(table: dict[str, Any]) -> dict[str, Row]:
    return {str(row[0]): row for row in table["rows"]}


def _overhead(table: dict[str, Any], concurrency: int, path: str) -> dict[str, Any]:
    """One row of the overhead table as {column: value}."""
    (row,) = [r for r in table["rows"] if r[0] == concurrency and r[1] == path]
    # Two columns share each of the "added" names (TTFT's, then the total's): the first wins.
    named: dict[str, Any] = {}
    for column, value in zip(table["columns"], row, strict=True):
        named.setdefault(column, value)
    return named


def _met(ok: bool, missed: str) -> str:
    return "met" if ok else f"**missed**, {missed}"


def table(tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    overhead, herd = tables["overhead"], _by_first(tables["herd"])
    replicas, doors = _by_first(tables["replicas"]), _by_first(tables["frontdoor"])
    one = _overhead(overhead, 1, "hearth")
    at = {c: _overhead(overhead, c, "hearth") for c in (50, 200)}
    lite = {c: _overhead(overhead, c, "litellm")["added p50"] for c in (1, 50, 200)}
    hearth = {1: one["added p50"], **{c: at[c]["added p50"] for c in at}}
    more = {c: lite[c] / hearth[c] for c in lite}
    p99 = "first event after the request was sent, p99 ms"
    burst = herd[p99][1]
    spread = herd[f"{p99}, the 1000 over 1 s"][1]
    granian = doors.get(f"herd: {p99}", [None, None, None])[2]
    added = one["added p50"]
    worst = min(at[c]["x direct"] for c in at)
    rows = [
        [
            "added TTFT p50 at concurrency 1 ≤ 1 ms",
            f"{added:.2f} ms (router CPU {one['router CPU ms/req']:.1f} ms per request)",
            _met(added <= 1, f"by {added - 1:.1f} ms"),
        ],
        [
            "throughput ≥ 0.9x direct at 50 and 200 streams",
            f"{at[50]['x direct']:.2f}x and {at[200]['x direct']:.2f}x "
            f"(CPU {at[50]['router CPU ms/req']:.1f} and {at[200]['router CPU ms/req']:.1f} ms per request)",
            _met(worst >= 0.9, f"{0.9 - worst:.2f}x short at worst"),
        ],
        [
            "LiteLLM adds ≥ 8x more",
            ", ".join(f"{more[c]:.1f}x at {c}" for c in more),
            _met(min(more.values()) >= 8, f"least {min(more.values()):.1f}x"),
        ],
        [
            "1000 streams written back to back: first event p99 ≤ 50 ms",
            f"one router {burst:.0f} ms; two replicas on one store {replicas[p99][2]:.0f} ms"
            + (f"; granian {granian:.0f} ms" if granian is not None else ""),
            _met(burst <= 50, f"{burst / 50:.0f}x the goal with one router"),
        ],
        [
            "the same 1000 arriving over 1 s: first event p99 ≤ 50 ms",
            f"{spread:.1f} ms",
            _met(spread <= 50, ""),
        ],
    ]
    return {
        "key": "goals",
        "title": "The goals of issue 25 against the last whole `make bench` run",
        "columns": ["goal", "measured", ""],
        "rows": rows,
        "notes": [],
    }

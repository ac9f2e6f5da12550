"""The docs' benchmark tables are generated, never typed: each `<!-- bench:KEY -->` block shows
what the last whole `make bench` run (docs/bench.json) measured, every table of that run is shown
somewhere, and the run covers every benchmark `make bench` has."""

from __future__ import annotations

import json

from tests.bench import pages
from tests.bench.__main__ import BENCHES


def results() -> dict:  # type: ignore[type-arg]
    return json.loads(pages.RESULTS.read_text())


def test_every_block_shows_the_last_run_as_it_renders() -> None:
    run = results()
    for page in pages.pages():
        text = page.read_text()
        assert pages.fill(text, run) == text, f"{page.name} is stale: run `make bench` (or mend the block)"


def test_every_table_of_the_run_is_shown_and_every_block_has_its_table() -> None:
    shown = {m["key"] for page in pages.pages() for m in pages.BLOCK.finditer(page.read_text())}
    measured = set(pages.tables_by_key(results())) | set(pages.derived(results()))
    assert shown == measured, f"shown only: {shown - measured}; measured only: {measured - shown}"


def test_the_run_is_a_whole_one_of_every_benchmark() -> None:
    run = results()
    assert run["meta"]["smoke"] is False
    assert {key.split("-")[0] for key in pages.tables_by_key(run)} == set(BENCHES)


def test_a_block_typed_by_hand_is_caught() -> None:
    run = results()
    key = run["tables"][0]["key"]
    typed = f"<!-- bench:{key} -->\n| a | b |\n<!-- /bench -->"
    assert pages.fill(typed, run) != typed

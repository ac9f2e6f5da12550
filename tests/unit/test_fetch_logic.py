"""The fetch's pure parts: its rate and ETA from readings, and what counts as worth a retry."""

from __future__ import annotations

import pytest

from hearth_fetch import ollama
from hearth_fetch.failures import FetchFailed, Why
from hearth_fetch.meter import WINDOW, Meter
from hearth_fetch.ollama import Layers


def test_the_rate_is_recent_bytes_over_recent_time_and_the_eta_what_is_left_at_it() -> None:
    meter = Meter(total=1000)
    assert meter.rate() is None and meter.eta() is None  # nothing measured: no figure, not 0
    meter.add(0.0, 0)
    meter.add(1.0, 100)
    meter.add(2.0, 100)
    assert meter.rate() == 100.0
    assert meter.eta() == 8.0
    assert meter.report() == {"bytes": 200, "totalBytes": 1000, "bytesPerSecond": 100.0, "etaSeconds": 8.0}


def test_bytes_already_on_disk_when_a_fetch_resumes_are_not_speed() -> None:
    meter = Meter(total=1000)
    meter.add(0.0, 600)  # the partial file a killed fetch left
    meter.add(2.0, 20)
    assert meter.rate() == 10.0 and meter.eta() == 38.0


def test_a_connection_that_slows_down_shows_in_the_rate_within_the_window() -> None:
    meter = Meter(total=10_000)
    meter.add(0.0, 0)
    for t in range(1, 11):
        meter.add(float(t), 100)  # 100 B/s for ten seconds
    for t in range(11, 11 + int(WINDOW) + 1):
        meter.add(float(t), 10)  # then 10 B/s
    rate = meter.rate()
    assert rate is not None and rate < 15  # the old speed has left the window


def test_only_what_a_retry_might_mend_is_retried() -> None:
    for why in (Why.NOT_FOUND, Why.UNAUTHORIZED, Why.CHECKSUM, Why.DISK_FULL, Why.CACHE_UNWRITABLE):
        assert FetchFailed(why, "…").permanent, why
    for why in (Why.UNREACHABLE, Why.SIZE):  # a dropped connection, a cut-short body: try again
        assert not FetchFailed(why, "…").permanent, why
    assert FetchFailed(Why.NOT_FOUND, "gone").line == "hearth-fetch failed: NotFound: gone"


def test_an_ollama_pulls_layers_add_up_and_what_a_layer_already_had_is_not_speed() -> None:
    meter = Meter()
    layers = Layers(meter)
    layers.update({"status": "pulling manifest"}, 0.0)
    assert meter.report()["totalBytes"] is None  # no layer yet: no total, no ETA
    weights = {"status": "pulling 6a0746a1ec1a", "digest": "sha256:6a07", "total": 1000}
    layers.update({**weights, "completed": 400}, 1.0)  # resumed: 400 bytes a killed pull left
    layers.update({**weights, "completed": 500}, 2.0)
    layers.update({**weights, "completed": 600}, 3.0)
    assert (meter.done, meter.total, meter.rate()) == (600, 1000, 100.0)
    layers.update(
        {"status": "pulling 4ad4a3ab2b0d", "digest": "sha256:4ad4", "total": 50, "completed": 50}, 3.0
    )
    assert (meter.done, meter.total) == (650, 1050)  # a layer already in the store: done at once
    assert meter.rate() == 100.0  # ...and not counted as speed
    layers.update({**weights, "completed": 1000}, 4.0)
    layers.update({"status": "success"}, 4.1)
    assert meter.done == meter.total == 1050


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("pull model manifest: file does not exist", Why.NOT_FOUND),
        ("digest mismatch, file must be downloaded again: want sha256:ab, got sha256:cd", Why.CHECKSUM),
        ("write /cache/ollama/blobs/sha256-ab-partial: no space left on device", Why.DISK_FULL),
        ("write sha256-ab-partial: file too large", Why.DISK_FULL),
        ("pull model manifest: 401: unauthorized", Why.UNAUTHORIZED),
        ("mkdir /cache/ollama/blobs: read-only file system", Why.CACHE_UNWRITABLE),
        (
            'Get "https://registry.ollama.ai/v2/…": dial tcp: lookup registry.ollama.ai: i/o timeout',
            Why.UNREACHABLE,
        ),
    ],
)
def test_ollamas_pull_errors_are_the_fetchs_reasons(error: str, reason: Why) -> None:
    assert ollama.why(error) is reason

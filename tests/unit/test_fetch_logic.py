"""The fetch's pure parts: its rate and ETA from readings, and what counts as worth a retry."""

from __future__ import annotations

from hearth_fetch.failures import FetchFailed, Why
from hearth_fetch.meter import WINDOW, Meter


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

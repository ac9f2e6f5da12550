"""Drill 6: the router's API fuzzed — schemathesis generating requests from the router's own
OpenAPI document (at least 5 000 in all), over HTTP, to the real router process watching the
homelab. No 5xx, no hang, every error OpenAI-shaped JSON."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from hearth_router.app import create_app
from hearth_router.registry import Registry
from hearth_router.settings import RouterSettings

from ..cluster.router_helpers import RouterProcess
from .record import Drill

REQUESTS_AT_LEAST = 5000
EXAMPLES = 900  # per operation; the operations without parameters run out of variety sooner
tally = Drill(
    "06-fuzz-schema",
    "Fuzzing: the OpenAPI document",
    "schemathesis requests against every operation of the router's OpenAPI document",
    checked='every answer < 500; every error `{"error": {message, type, code}}`; none over 10 s',
)


def _schema() -> Any:
    """The document the router serves (checked against the live one below), built in-process
    so the operations can be listed when the tests are collected."""
    app = create_app(RouterSettings(), None, Registry(None))
    return schemathesis.openapi.from_dict(app.openapi())


SCHEMA = _schema()
# The model feed is an endless stream by design (it never ends for a fuzzer to judge); its wrong
# methods are tried by hand (test_bad_input).
OPERATIONS = {
    op.label: op
    for op in (result.ok() for result in SCHEMA.get_all_operations())
    if op.path != "/api/models/events"
}


def openai_shaped(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error


def test_the_router_serves_the_document_that_is_fuzzed(router: RouterProcess) -> None:
    assert httpx.get(f"{router.url}/openapi.json").json() == SCHEMA.raw_schema


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_operation_answers_without_5xx_and_errors_are_openai_shaped(
    router: RouterProcess, label: str
) -> None:
    @given(case=OPERATIONS[label].as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def fuzz(case: Any) -> None:
        tally.times += 1
        try:
            response = case.call(base_url=router.url, timeout=10)
        except requests.Timeout:
            tally.hung += 1
            raise
        shaped = response.status_code < 400 or openai_shaped(_json(response))
        if response.status_code >= 500 or not shaped:
            tally.server_errors += 1
        assert response.status_code < 500, (label, case.body, response.text[:300])
        assert shaped, (label, response.status_code, response.text[:300])

    fuzz()


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def test_the_fuzzing_sent_enough_requests() -> None:
    """Runs after the fuzzing (file order): the count, and the drill's record."""
    assert tally.times >= REQUESTS_AT_LEAST, f"only {tally.times} requests were generated"
    tally.save()

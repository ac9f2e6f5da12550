"""The router's services, built once per app (no module-level singletons) and handed each to
the routes that need it: a route or a stream names the two or three it uses.

- `Holding` (holding.py): the one wake, and waiting for Warm;
- `Admissions` (admission.py): which model, the waiter limit, the line and its slots;
- `WholeAnswers` (answers.py) and `Streams` (streaming.py): a request run against an engine,
  with one retry loop for both;
- `InFlight` (inflight.py): what a cancel or the drain can end.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubernetes_asyncio import client

from hearth_router.admission import Admissions, Waiters
from hearth_router.annotations import Annotator
from hearth_router.answers import WholeAnswers
from hearth_router.holding import Holding
from hearth_router.inflight import InFlight
from hearth_router.line import Line, LocalLine
from hearth_router.metrics import RouterMetrics
from hearth_router.registry import Registry
from hearth_router.settings import RouterSettings
from hearth_router.shared_line import SharedLine
from hearth_router.streaming import Streams
from hearth_router.unreachable import Unreachable
from hearth_router.upstream import Upstream


@dataclass
class Services:
    settings: RouterSettings
    metrics: RouterMetrics
    registry: Registry
    line: Line
    annotator: Annotator
    upstream: Upstream
    inflight: InFlight
    admissions: Admissions
    answers: WholeAnswers
    streams: Streams


def new_line(settings: RouterSettings, metrics: RouterMetrics) -> Line:
    """The store every replica shares when one is configured; this process's own otherwise."""
    if settings.store_url is None:
        return LocalLine()
    metrics.store_up.set(0)
    return SharedLine(
        settings.store_url,
        settings.store_prefix,
        settings.store_timeout,
        settings.store_lease_seconds,
        metrics.store_up,
    )


def build(
    settings: RouterSettings,
    api: client.ApiClient | None,
    registry: Registry | None = None,
    upstream: Upstream | None = None,
) -> Services:
    metrics = RouterMetrics()
    line = new_line(settings, metrics)
    registry = registry or Registry(api, settings.namespace)
    annotator = Annotator(api, settings.activity_interval, line)
    upstream = upstream or Upstream(settings.connect_timeout, settings.stall_timeout)
    inflight = InFlight()
    unreachable = Unreachable(settings.unreachable_retry_seconds)
    holding = Holding(settings, registry, annotator, metrics, unreachable)
    admissions = Admissions(
        settings, registry, line, holding, annotator, unreachable, Waiters(metrics.waiters)
    )
    return Services(
        settings=settings,
        metrics=metrics,
        registry=registry,
        line=line,
        annotator=annotator,
        upstream=upstream,
        inflight=inflight,
        admissions=admissions,
        answers=WholeAnswers(admissions, upstream, metrics, inflight),
        streams=Streams(upstream, metrics, inflight, settings),
    )

"""The router's Prometheus metrics."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

LATENCY = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class RouterMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_open_fds, process_resident_memory_bytes…: what a leak shows first.
        ProcessCollector(registry=self.registry)
        self.tasks = Gauge(
            "hearth_router_asyncio_tasks", "asyncio tasks alive in the router", registry=self.registry
        )
        self.tasks.set_function(_task_count)
        self.requests = Counter(
            "hearth_router_requests_total",
            "Requests by model and outcome",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.ttft = Histogram(
            "hearth_router_time_to_first_token_seconds",
            "Request to first token",
            ["model"],
            buckets=LATENCY,
            registry=self.registry,
        )
        self.cold_wait = Histogram(
            "hearth_router_cold_start_wait_seconds",
            "Time requests waited for a load",
            ["model"],
            buckets=LATENCY,
            registry=self.registry,
        )
        self.waiters = Gauge(
            "hearth_router_waiters",
            "Requests waiting for a model to load or a slot",
            ["model"],
            registry=self.registry,
        )
        self.store_up = Gauge(
            "hearth_router_store_up",
            "1: the queue is shared with the other replicas through the store; 0: this replica's own",
            registry=self.registry,
        )
        self.stream_errors = Counter(
            "hearth_router_stream_errors_total",
            "Streams that ended in an error event",
            ["model", "code"],
            registry=self.registry,
        )
        self.upstream = Histogram(
            "hearth_router_upstream_latency_seconds",
            "Engine latency: to the first token when streaming, to the whole answer when not",
            ["model"],
            buckets=LATENCY,
            registry=self.registry,
        )


def _task_count() -> float:
    """Tasks alive, read when /metrics is scraped (on the event loop); 0 off it."""
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:
        return 0.0

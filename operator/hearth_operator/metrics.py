"""The operator's Prometheus metrics (served on /metrics by prometheus-client)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.warmup = Histogram(
            "hearth_warmup_seconds",
            "Measured cold starts, wake to first Ready replica",
            ["model", "gpu_class"],
            registry=self.registry,
            buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300),
        )
        self.phases = Gauge("hearth_models", "ModelDeployments per phase", ["phase"], registry=self.registry)
        self.evictions = Counter(
            "hearth_evictions_total", "Models unloaded to free a GPU", ["model"], registry=self.registry
        )
        self.reconcile_errors = Counter(
            "hearth_reconcile_errors_total", "Reconciles that failed", registry=self.registry
        )
        self.reconciles = Counter("hearth_reconciles_total", "Reconciles run", registry=self.registry)

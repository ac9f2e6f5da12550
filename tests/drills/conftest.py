"""Reliability and security drills: faults injected into the simulated homelab with the real
operator and router processes; each counts what a user would have noticed (see record.py)."""

from __future__ import annotations

from ..cluster.conftest import homelab, kube, operator, router, store  # noqa: F401  (fixtures, shared)

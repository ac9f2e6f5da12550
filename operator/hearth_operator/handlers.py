"""kopf handlers: thin. They keep kopf's indexes of the world and kick the reconciler.

Only raw watch events (`on.event`) and indexes are used — no `on.create/update` — so kopf keeps no
annotations or finalizers of its own on ModelDeployments: users own spec and metadata, the router
owns its annotations, the operator owns status (docs/architecture.md: one writer per thing).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import kopf
from prometheus_client import start_http_server

from hearth_api.connect import api_client
from hearth_api.environment import in_cluster_server
from hearth_api.names import GROUP, MD_LABEL, PLURAL, VERSION, WEIGHTS_LABEL
from hearth_operator import placement
from hearth_operator.downloads import WeightsCache
from hearth_operator.fetch_progress import ProgressReader
from hearth_operator.headers import HeaderReader
from hearth_operator.kube import Writer, transient
from hearth_operator.metrics import OperatorMetrics
from hearth_operator.reconciler import Reconciler
from hearth_operator.settings import OperatorSettings
from hearth_operator.world import Indexes, key_of

log = logging.getLogger("hearth.operator")
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    if SERVICE_ACCOUNT_TOKEN.exists():
        info = kopf.login_with_service_account(**kwargs)
        server = in_cluster_server(os.environ)
        # kopf's service-account login names https://kubernetes.default.svc, which needs the
        # cluster's DNS; the kubelet's KUBERNETES_SERVICE_* variables do not (client-go reads them).
        return dataclasses.replace(info, server=server) if info is not None and server else info
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    settings.peering.standalone = True  # one replica (Recreate); no peering CRDs needed
    settings.scanning.disabled = True  # no cluster-wide discovery: least privilege
    settings.posting.level = logging.WARNING  # kopf's own log lines are not Events; ours are
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 30
    metrics = OperatorMetrics()
    config: OperatorSettings = memo.settings
    if config.metrics_port:
        start_http_server(config.metrics_port, addr=config.metrics_host, registry=metrics.registry)
    cache = WeightsCache(
        claim=config.cache_claim,
        host_path=config.cache_host_path,
        image=config.fetch_image,
        hf_token_secret=config.hf_token_secret,
        hf_endpoint=config.hf_endpoint,
    )
    memo.progress = ProgressReader()
    memo.reconciler = Reconciler(
        writer=Writer(await api_client()),
        metrics=metrics,
        load_timeout=config.load_timeout_seconds,
        transient=transient,
        cache=cache if cache.enabled else None,
        read_progress=memo.progress,
        headers=(
            HeaderReader(hf_endpoint=config.hf_endpoint, ollama_registry=config.ollama_registry or None)
            if config.estimate_vram
            else None
        ),
    )


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    memo.reconciler.queue.close()
    await memo.progress.close()


def _bind(memo: Any, kwargs: dict[str, Any]) -> Reconciler:
    reconciler: Reconciler = memo.reconciler
    if reconciler.indexes.models is None:
        reconciler.indexes = Indexes(
            nodes=kwargs["gpu_nodes"],
            models=kwargs["model_bodies"],
            pods=kwargs["model_pods"],
            jobs=kwargs["weights_jobs"],
            fetch_pods=kwargs["weights_pods"],
        )
    return reconciler


# --- indexes: kopf fills them from its watches before any handler runs ------------------------


@kopf.index("", "v1", "nodes")
def gpu_nodes(body: kopf.Body, name: str, **_: Any) -> dict[str, placement.GpuNode] | None:
    node = placement.gpu_node(dict(body))
    return {name: node} if node else None


@kopf.index(GROUP, VERSION, PLURAL)
def model_bodies(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> dict[str, dict[str, Any]]:
    return {key_of(namespace or "default", name): dict(body)}


@kopf.index("", "v1", "pods", labels={MD_LABEL: kopf.PRESENT})
def model_pods(
    body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> dict[str, dict[str, Any]]:
    return {key_of(namespace or "default", labels[MD_LABEL]): dict(body)}


@kopf.index("batch", "v1", "jobs", labels={WEIGHTS_LABEL: kopf.PRESENT})
def weights_jobs(
    body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> dict[str, dict[str, Any]]:
    return {key_of(namespace or "default", labels[WEIGHTS_LABEL]): dict(body)}


@kopf.index("", "v1", "pods", labels={WEIGHTS_LABEL: kopf.PRESENT})
def weights_pods(
    body: kopf.Body, namespace: str | None, labels: kopf.Labels, **_: Any
) -> dict[str, dict[str, Any]]:
    return {key_of(namespace or "default", labels[WEIGHTS_LABEL]): dict(body)}


# --- triggers ---------------------------------------------------------------------------------


@kopf.on.event(GROUP, VERSION, PLURAL)
async def model_changed(namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    _bind(memo, kwargs).kick(key_of(namespace or "default", name))


@kopf.on.event("", "v1", "pods", labels={MD_LABEL: kopf.PRESENT})
async def pod_changed(namespace: str | None, labels: kopf.Labels, memo: Any, **kwargs: Any) -> None:
    _bind(memo, kwargs).kick(key_of(namespace or "default", labels[MD_LABEL]))


@kopf.on.event("batch", "v1", "jobs", labels={WEIGHTS_LABEL: kopf.PRESENT})
async def weights_job_changed(namespace: str | None, labels: kopf.Labels, memo: Any, **kwargs: Any) -> None:
    _bind(memo, kwargs).kick(key_of(namespace or "default", labels[WEIGHTS_LABEL]))


@kopf.on.event("", "v1", "pods", labels={WEIGHTS_LABEL: kopf.PRESENT})
async def weights_pod_changed(namespace: str | None, labels: kopf.Labels, memo: Any, **kwargs: Any) -> None:
    _bind(memo, kwargs).kick(key_of(namespace or "default", labels[WEIGHTS_LABEL]))


@kopf.on.event("", "v1", "nodes")
async def node_changed(memo: Any, **kwargs: Any) -> None:
    _bind(memo, kwargs).kick_waiting()

"""How any Hearth process reaches the Kubernetes API: in a pod, its ServiceAccount; elsewhere,
the kubeconfig (KUBECONFIG or ~/.kube/config). The only module of this package that does I/O."""

from __future__ import annotations

from kubernetes_asyncio import client, config


async def api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()

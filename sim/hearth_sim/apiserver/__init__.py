"""A Kubernetes API server on loopback: kmock's emulator made to behave like kube-apiserver
where kopf, the kubernetes clients, kubectl and Helm rely on it."""

from hearth_sim.apiserver.errors import ApiError
from hearth_sim.apiserver.listener import Listener, serve_api, serve_restartable
from hearth_sim.apiserver.resources import ResourceType
from hearth_sim.apiserver.server import HearthApiServer
from hearth_sim.apiserver.store import Store

__all__ = [
    "ApiError",
    "HearthApiServer",
    "Listener",
    "ResourceType",
    "Store",
    "serve_api",
    "serve_restartable",
]

"""Discovery: what `/api`, `/apis` and each group/version say is served, in the shapes kubectl's
REST mapper and kopf expect. Pure functions of the registered resource types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import kmock

from hearth_sim.apiserver.resources import ResourceType

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-hearth-sim",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# Groups from kmock's bundled k3s discovery that this server actually serves.
_SERVED_GROUPS = {
    "",
    "apps",
    "apiextensions.k8s.io",
    "coordination.k8s.io",
    "events.k8s.io",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "policy",
    "batch",
    "discovery.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "node.k8s.io",
    "admissionregistration.k8s.io",
    "autoscaling",
}


def builtin_types() -> list[ResourceType]:
    """Built-in resources, described from kmock's bundled discovery snapshot."""
    bundle = kmock.KubernetesEmulator()
    bundle.resources.load_bundled()
    out = []
    for ref in bundle.resources:
        info = bundle.resources[ref]
        if ref.group not in _SERVED_GROUPS or "list" not in info.verbs:
            continue
        out.append(
            ResourceType(
                group=ref.group,
                version=str(ref.version),
                plural=str(ref.plural),
                kind=str(info.kind),
                namespaced=bool(info.namespaced),
                singular=info.singular or "",
                shortnames=tuple(sorted(info.shortnames)),
                verbs=tuple(sorted(info.verbs)),
                categories=tuple(sorted(info.categories)),
                subresources=tuple(sorted(s for s in info.subresources if s in ("status", "scale"))),
            )
        )
    return out


def document(types: Sequence[ResourceType], path: str) -> dict[str, Any] | None:
    if path == "/version":
        return SERVER_VERSION
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [group_doc(types, g) for g in groups(types) if g],
        }
    if path == "/":
        gvs = {t.api_version for t in types}
        return {
            "paths": sorted(
                {"/api", "/api/v1", "/apis", "/version"}
                | {f"/apis/{gv}" for gv in gvs if "/" in gv}
                | {f"/apis/{gv.split('/')[0]}" for gv in gvs if "/" in gv}
            )
        }
    parts = [p for p in path.split("/") if p]
    if parts == ["api", "v1"]:
        return resource_list(types, "", "v1")
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups(types):
        return {"kind": "APIGroup", "apiVersion": "v1", **group_doc(types, parts[1])}
    if len(parts) == 3 and parts[0] == "apis" and parts[1] in groups(types):
        if parts[2] in groups(types)[parts[1]]:
            return resource_list(types, parts[1], parts[2])
    return None


def groups(types: Sequence[ResourceType]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for t in types:
        versions = groups.setdefault(t.group, [])
        if t.version not in versions:
            versions.append(t.version)
    return groups


def group_doc(types: Sequence[ResourceType], group: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in groups(types)[group]]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def resource_list(types: Sequence[ResourceType], group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for t in sorted(types, key=lambda t: t.plural):
        if t.group != group or t.version != version:
            continue
        resources.append(
            {
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": list(t.verbs),
                "shortNames": list(t.shortnames),
                "categories": list(t.categories),
            }
        )
        for sub in t.subresources:
            # Subresources carry no short names, or kubectl finds `md` ambiguous.
            resources.append(
                {
                    "name": f"{t.plural}/{sub}",
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": "Scale" if sub == "scale" else t.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    # The core group's groupVersion is "v1", not "/v1", or kubectl's REST mapper loses it.
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }

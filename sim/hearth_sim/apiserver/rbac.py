"""Who may do what: ServiceAccount tokens and RBAC, as kube-apiserver decides them. Pure.

Users: the kubeconfig's admin (and requests without a token, the homelab's own tooling) may do
anything; a token from the TokenRequest API is its ServiceAccount, held to the Roles and
ClusterRoles bound to it; any other token is 401. Rules match on API group, resource (with
`/subresource`), verb and, where given, resourceNames; a RoleBinding grants in its namespace,
a ClusterRoleBinding everywhere. Non-resource paths (discovery, /version, health) are open to
every authenticated user, as the default `system:discovery` role makes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hearth_sim.apiserver.errors import ApiError

ADMIN_TOKEN = "hearth-sim"


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do (Kubernetes' authorizer attributes)."""

    verb: str
    group: str
    resource: str  # with `/subresource` where there is one
    namespace: str | None
    name: str | None


def verb(method: str, has_name: bool, watching: bool) -> str:
    if method == "GET":
        return "watch" if watching else "get" if has_name else "list"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def service_account(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def _matches(rule: dict[str, Any], attrs: Attributes) -> bool:
    def has(values: Iterable[str] | None, wanted: str) -> bool:
        values = list(values or [])
        return "*" in values or wanted in values

    names = rule.get("resourceNames") or []
    return (
        has(rule.get("apiGroups"), attrs.group)
        and has(rule.get("resources"), attrs.resource)
        and has(rule.get("verbs"), attrs.verb)
        and (not names or attrs.name in names)
    )


def _binds(binding: dict[str, Any], user: str) -> bool:
    for subject in binding.get("subjects") or []:
        if subject.get("kind") == "ServiceAccount":
            if service_account(subject.get("namespace", ""), subject.get("name", "")) == user:
                return True
        elif subject.get("kind") == "User" and subject.get("name") == user:
            return True
    return False


def allowed(
    user: str,
    attrs: Attributes,
    roles: dict[tuple[str, str], dict[str, Any]],
    cluster_roles: dict[str, dict[str, Any]],
    bindings: list[dict[str, Any]],
    cluster_bindings: list[dict[str, Any]],
) -> bool:
    """Whether any role bound to `user` has a rule for `attrs`. `roles` are keyed (namespace,
    name); RoleBindings grant only in their own namespace."""
    granted: list[dict[str, Any]] = []
    for binding in cluster_bindings:
        if _binds(binding, user):
            granted += (cluster_roles.get(binding["roleRef"]["name"]) or {}).get("rules") or []
    for binding in bindings:
        ns = binding["metadata"].get("namespace")
        if attrs.namespace != ns or not _binds(binding, user):
            continue
        ref = binding["roleRef"]
        role = (
            cluster_roles.get(ref["name"]) if ref["kind"] == "ClusterRole" else roles.get((ns, ref["name"]))
        )
        granted += (role or {}).get("rules") or []
    return any(_matches(rule, attrs) for rule in granted)


def forbidden(user: str, attrs: Attributes) -> ApiError:
    """403 worded as kube-apiserver words it."""
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    resource, _, sub = attrs.resource.partition("/")
    what = f'resource "{resource}"' + (f' with subresource "{sub}"' if sub else "")
    named = f'{resource} "{attrs.name}"' if attrs.name else resource
    message = (
        f'{named} is forbidden: User "{user}" cannot {attrs.verb} {what} in API group "{attrs.group}" {where}'
    )
    return ApiError(403, "Forbidden", message, {"name": attrs.name or "", "kind": resource})


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")

"""The simulated API server's RBAC decisions, as kube-apiserver makes them."""

from __future__ import annotations

from typing import Any

from hearth_sim.apiserver import rbac

OPERATOR = rbac.service_account("hearth", "hearth-operator")
ROLES = {
    ("ai", "reader"): {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]},
}
CLUSTER_ROLES = {
    "status-writer": {
        "rules": [
            {"apiGroups": ["hearth.dev"], "resources": ["modeldeployments/status"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["one"]},
        ]
    },
    "everything": {"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
}


def binding(kind: str, role: str, namespace: str | None = None, name: str = OPERATOR) -> dict[str, Any]:
    ns, account = name.split(":")[2:]
    meta = {"name": f"b-{role}", **({"namespace": namespace} if namespace else {})}
    subject = {"kind": "ServiceAccount", "name": account, "namespace": ns}
    return {"metadata": meta, "roleRef": {"kind": kind, "name": role}, "subjects": [subject]}


def may(
    verb: str, group: str, resource: str, namespace: str | None, name: str | None = None, **kw: Any
) -> bool:
    attrs = rbac.Attributes(verb, group, resource, namespace, name)
    return rbac.allowed(
        kw.get("user", OPERATOR), attrs, ROLES, CLUSTER_ROLES, kw.get("bindings", []), kw.get("cluster", [])
    )


def test_a_cluster_role_binding_grants_everywhere_and_only_its_rules() -> None:
    cluster = [binding("ClusterRole", "status-writer")]
    assert may("patch", "hearth.dev", "modeldeployments/status", "ai", "m", cluster=cluster)
    assert not may(
        "patch", "hearth.dev", "modeldeployments", "ai", "m", cluster=cluster
    )  # not the main resource
    assert may("get", "", "configmaps", "ai", "one", cluster=cluster)
    assert not may("get", "", "configmaps", "ai", "two", cluster=cluster)  # resourceNames


def test_a_role_binding_grants_only_in_its_namespace() -> None:
    bindings = [binding("Role", "reader", "ai")]
    assert may("list", "", "pods", "ai", bindings=bindings)
    assert not may("list", "", "pods", "other", bindings=bindings)
    assert not may("list", "", "pods", None, bindings=bindings)  # the cluster scope
    # A RoleBinding to a ClusterRole grants that role's rules in the binding's namespace.
    wide = [binding("ClusterRole", "everything", "ai")]
    assert may("delete", "apps", "deployments", "ai", "x", bindings=wide)
    assert not may("delete", "apps", "deployments", "other", "x", bindings=wide)


def test_someone_else_bound_grants_nothing() -> None:
    cluster = [binding("ClusterRole", "everything", name=rbac.service_account("hearth", "hearth-router"))]
    assert not may("get", "", "pods", "ai", "p", cluster=cluster)


def test_verbs_and_the_forbidden_message() -> None:
    assert [rbac.verb("GET", True, False), rbac.verb("GET", False, False), rbac.verb("GET", False, True)] == [
        "get",
        "list",
        "watch",
    ]
    assert (
        rbac.verb("DELETE", False, False) == "deletecollection" and rbac.verb("PATCH", True, False) == "patch"
    )
    error = rbac.forbidden(OPERATOR, rbac.Attributes("list", "", "pods", None, None))
    assert error.code == 403 and error.reason == "Forbidden"
    assert error.message == (
        'pods is forbidden: User "system:serviceaccount:hearth:hearth-operator" cannot list resource '
        '"pods" in API group "" at the cluster scope'
    )

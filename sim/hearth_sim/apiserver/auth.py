"""The API server's door: who is asking (tokens), and may they (RBAC over the store's Roles
and bindings). TokenRequest (`POST .../serviceaccounts/NAME/token`) issues the tokens."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from hearth_sim.apiserver import rbac
from hearth_sim.apiserver.errors import not_found
from hearth_sim.apiserver.store import Store

log = logging.getLogger("hearth.sim.apiserver.auth")
RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass
class Authorizer:
    store: Store
    tokens: dict[str, str] = field(default_factory=dict)  # token → ServiceAccount user name
    denied: list[str] = field(default_factory=list)  # every 403 answered, as its message

    def issue(self, namespace: str, name: str) -> dict[str, Any]:
        """A TokenRequest's answer, for an existing ServiceAccount."""
        accounts = self.store.resolve("", "v1", "serviceaccounts")
        if not any(
            a["metadata"]["name"] == name for a in self.store.list_objects(accounts, namespace, None, None)
        ):
            raise not_found("serviceaccounts", name)
        token = f"sim-sa-{secrets.token_urlsafe(24)}"
        self.tokens[token] = rbac.service_account(namespace, name)
        return {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"audiences": ["https://kubernetes.default.svc"]},
            "status": {"token": token, "expirationTimestamp": "2099-01-01T00:00:00Z"},
        }

    def check(self, headers: dict[str, str], method: str, target: Any, watching: bool) -> None:
        """Raise 401 for an unknown token, 403 for a ServiceAccount RBAC does not allow."""
        header = headers.get("Authorization") or headers.get("authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token or token == rbac.ADMIN_TOKEN:
            return
        user = self.tokens.get(token)
        if user is None:
            raise rbac.unauthorized()
        if target is None:
            return  # discovery, /version, health: open to the authenticated
        resource = f"{target.plural}/{target.subresource}" if target.subresource else target.plural
        attrs = rbac.Attributes(
            verb=rbac.verb(method, target.name is not None, watching),
            group=target.group,
            resource=resource,
            namespace=target.namespace,
            name=target.name,
        )
        if not rbac.allowed(user, attrs, *self._rbac_objects()):
            error = rbac.forbidden(user, attrs)
            self.denied.append(error.message)
            log.warning("403 %s", error.message)
            raise error

    def _rbac_objects(
        self,
    ) -> tuple[
        dict[tuple[str, str], dict[str, Any]],
        dict[str, dict[str, Any]],
        list[dict[str, Any]],
        list[dict[str, Any]],
    ]:
        def every(plural: str) -> list[dict[str, Any]]:
            return list(
                self.store.list_objects(self.store.resolve(RBAC_GROUP, "v1", plural), None, None, None)
            )

        roles = {(r["metadata"].get("namespace", ""), r["metadata"]["name"]): r for r in every("roles")}
        cluster_roles = {r["metadata"]["name"]: r for r in every("clusterroles")}
        return roles, cluster_roles, every("rolebindings"), every("clusterrolebindings")

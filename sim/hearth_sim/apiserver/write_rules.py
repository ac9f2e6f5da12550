"""What the server fills in on a create, what a write may change, whether a custom resource
meets its schema, and what a CustomResourceDefinition serves. Pure."""

from __future__ import annotations

import copy
import secrets
import uuid
from typing import Any

from hearth_sim.apiserver import errors, schema
from hearth_sim.apiserver.resources import Obj, ResourceType, now_rfc3339


def group_resource(rtype: ResourceType) -> str:
    """As errors name a type: `deployments.apps`, `pods`."""
    return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural


def check_precondition(rtype: ResourceType, old: Obj, body: Obj) -> None:
    """A write that names a resourceVersion applies to that version only (409 otherwise)."""
    wanted = (body.get("metadata") or {}).get("resourceVersion")
    if wanted and wanted != old["metadata"]["resourceVersion"]:
        raise errors.conflict(group_resource(rtype), old["metadata"]["name"])


def spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def apply_rules(rtype: ResourceType, old: Obj, new: Obj, subresource: str | None) -> Obj:
    """What a write may change: identity fields never; status only through /status (and
    nothing else there) when the type has that subresource."""
    if subresource not in (None, "status", "scale"):
        raise errors.ApiError(405, "MethodNotAllowed", f"subresource {subresource!r} is not writable")
    if subresource == "scale":
        replicas = (new.get("spec") or {}).get("replicas")
        result = copy.deepcopy(old)
        result.setdefault("spec", {})["replicas"] = replicas
        new = result
    elif rtype.has_status and subresource == "status":
        result = copy.deepcopy(old)
        if "status" in new:
            result["status"] = copy.deepcopy(new["status"])
        else:
            result.pop("status", None)
        new = result
    elif rtype.has_status:
        new = copy.deepcopy(new)
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    else:
        new = copy.deepcopy(new)
    meta = new.setdefault("metadata", {})
    for key in (
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ):
        if key in old["metadata"]:
            meta[key] = old["metadata"][key]
        else:
            meta.pop(key, None)
    new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
    if spec_part(new) != spec_part(old):
        meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
    meta["resourceVersion"] = old["metadata"]["resourceVersion"]
    return new


def crd_types(crd: Obj) -> list[ResourceType]:
    """The types a CRD serves, one per served version; a CRD without names is refused (422)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    if not spec.get("group") or not names.get("plural") or not names.get("kind"):
        raise errors.invalid(
            "CustomResourceDefinition",
            crd["metadata"].get("name", ""),
            "spec.group, spec.names.plural and spec.names.kind are required",
        )
    return [
        ResourceType(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular", names["kind"].lower()),
            shortnames=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            subresources=tuple(version.get("subresources") or {}),
            printer_columns=version.get("additionalPrinterColumns"),
            crd_name=crd["metadata"]["name"],
            schema=(version.get("schema") or {}).get("openAPIV3Schema"),
        )
        for version in spec.get("versions") or []
        if version.get("served", True)
    ]


def crd_status(crd: Obj, previous: Obj | None) -> Obj:
    """Names accepted and Established, as the apiextensions controller says; the transition
    times of a CRD applied again are kept, so a re-apply is a no-op."""
    spec = crd.get("spec") or {}
    stamp = now_rfc3339()
    status: Obj = {
        "acceptedNames": spec.get("names") or {},
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
        "conditions": [
            {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": stamp}
            for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            )
        ],
    }
    if previous is not None and previous.get("status", {}).get("conditions"):
        status["conditions"] = previous["status"]["conditions"]
    return status


def new_object(rtype: ResourceType, namespace: str | None, body: Any) -> Obj:
    """A created object as the server fills it in: its name (or one from generateName), its
    namespace, its type, identity and generation; status only through /status (Nodes aside)."""
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be a JSON object")
    obj = copy.deepcopy(body)
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if not meta.get("name"):
        if not meta.get("generateName"):
            raise errors.invalid(
                rtype.kind, "", "metadata.name: Required value: name or generateName is required"
            )
        meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
    if rtype.namespaced:
        ns = namespace or meta.get("namespace") or "default"
        if namespace and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
    if rtype.has_status and rtype.kind != "Node":
        obj.pop("status", None)  # status is written through /status only
    meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
    meta.pop("deletionTimestamp", None)
    meta.pop("resourceVersion", None)
    return obj


def admit(rtype: ResourceType, obj: Obj, strict: bool) -> Obj:
    """Custom resources meet their CRD's schema: defaults filled in, unknown fields pruned
    (or, strictly, refused), invalid values refused with the field named (422)."""
    if rtype.schema is None:
        return obj
    admitted, problems = schema.admit(rtype.schema, obj, strict)
    if problems:
        name = obj["metadata"].get("name", "")
        text = "; ".join(m if m.startswith("unknown field") else f"{f}: {m}" for f, m in problems)
        causes = [{"field": f, "message": m} for f, m in problems]
        raise errors.invalid(f"{rtype.kind}.{rtype.group}", name, text, causes)
    return admitted

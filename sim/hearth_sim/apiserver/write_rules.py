"""What a write may change, and what a CustomResourceDefinition serves. Pure."""

from __future__ import annotations

import copy

from hearth_sim.apiserver import errors
from hearth_sim.apiserver.resources import Obj, ResourceType, now_rfc3339


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

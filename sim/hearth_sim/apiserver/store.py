"""The API server's object store: what kube-apiserver guarantees, without etcd.

One global resourceVersion counter; every change is an event kept in a bounded history so a
watch can start from any recent resourceVersion with nothing replayed twice and nothing missed.
Server-filled metadata, generation bumps on spec changes only, the status subresource's split,
optimistic concurrency (409), finalizers, owner-reference garbage collection and CRD
registration live here. No I/O: the HTTP layer (server.py) calls in and streams out.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections import deque
from typing import Any

from hearth_sim.apiserver import errors, patching, schema
from hearth_sim.apiserver.resources import INITIAL_EVENTS_END, Event, Obj, ResourceType, Watch, now_rfc3339
from hearth_sim.apiserver.selectors import field_matcher, label_matcher


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Store:
    def __init__(self, history: int = 50_000) -> None:
        self.types: dict[str, ResourceType] = {}
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = 0
        self._history: deque[tuple[int, str, Event]] = deque(maxlen=history)
        self._compacted = 0  # events at or below this resourceVersion may be gone
        self._watches: set[Watch] = set()

    # --- types -------------------------------------------------------------------------------

    def register(self, rtype: ResourceType) -> None:
        self.types[rtype.key] = rtype
        self._objects.setdefault(rtype.key, {})

    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.types.get(f"{group}/{version}/{plural}")
        if rtype is None:
            gv = f"{group}/{version}" if group else version
            raise errors.ApiError(
                404, "NotFound", f"the server could not find the requested resource ({plural} in {gv})"
            )
        return rtype

    @property
    def resource_version(self) -> str:
        return str(self._rv)

    # --- reads -------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._objects[rtype.key].get((self._ns(rtype, namespace), name))
        if obj is None:
            raise errors.not_found(self._gr(rtype), name)
        return copy.deepcopy(obj)

    def list_objects(
        self,
        rtype: ResourceType,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        probe = Watch(rtype, namespace, None, label_matcher(label_selector), field_matcher(field_selector))
        items = [o for (_, _), o in sorted(self._objects[rtype.key].items()) if probe.matches(o)]
        return copy.deepcopy(items)

    # --- watches -----------------------------------------------------------------------------

    def watch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str | None,
        label_selector: str | None,
        field_selector: str | None,
        resource_version: str | None,
        send_initial_events: bool = False,
    ) -> Watch:
        """Register a watch. With no (or "0") resourceVersion, or with sendInitialEvents, it
        starts with ADDED for what exists; with a resourceVersion, it replays the history after
        it. Synchronous, so nothing can change between the snapshot and the registration."""
        w = Watch(rtype, namespace, name, label_matcher(label_selector), field_matcher(field_selector))
        try:
            since = int(resource_version) if resource_version else 0
        except ValueError:
            raise errors.bad_request(f"invalid resourceVersion {resource_version!r}") from None
        if since == 0 or send_initial_events:
            for obj in self.list_objects(rtype, namespace):
                if w.matches(obj):
                    w.queue.put_nowait({"type": "ADDED", "object": obj})
            if send_initial_events:
                w.queue.put_nowait(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": rtype.kind,
                            "apiVersion": rtype.api_version,
                            "metadata": {
                                "resourceVersion": self.resource_version,
                                "annotations": {INITIAL_EVENTS_END: "true"},
                            },
                        },
                    }
                )
        elif since < self._compacted:
            gone = errors.gone(f"too old resource version: {since} ({self._compacted})")
            w.queue.put_nowait({"type": "ERROR", "object": gone.status()})
        else:
            for rv, key, event in self._history:
                if rv > since and key == rtype.key and w.matches(event["object"]):
                    w.queue.put_nowait(copy.deepcopy(event))
        self._watches.add(w)
        return w

    @property
    def watches(self) -> set[Watch]:
        return self._watches

    def unwatch(self, w: Watch) -> None:
        self._watches.discard(w)

    def _emit(self, rtype: ResourceType, kind: str, obj: Obj) -> None:
        event = {"type": kind, "object": copy.deepcopy(obj)}
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0][0]
        self._history.append((self._rv, rtype.key, event))
        for w in self._watches:
            if w.rtype.key == rtype.key and w.matches(obj):
                w.queue.put_nowait(copy.deepcopy(event))

    # --- writes ------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str | None, body: Any, strict: bool = False) -> Obj:
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
        key = (meta.get("namespace", ""), meta["name"])
        if key in self._objects[rtype.key]:
            raise errors.already_exists(self._gr(rtype), meta["name"])
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        if rtype.has_status and rtype.kind != "Node":
            obj.pop("status", None)  # status is written through /status only
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
        meta.pop("deletionTimestamp", None)
        meta.pop("resourceVersion", None)
        obj = self._admit(rtype, obj, strict)
        meta = obj["metadata"]
        self._after_write(rtype, obj)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._objects[rtype.key][key] = obj
        self._emit(rtype, "ADDED", obj)
        created = copy.deepcopy(obj)
        if self._owner_missing(obj):
            self._remove(rtype, obj)  # the garbage collector deletes dependents of absent owners
        return created

    def replace(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None = None,
        strict: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        old = self._current(rtype, namespace, name)
        self._check_precondition(rtype, old, body)
        return self._commit(
            rtype, old, self._admit(rtype, self._apply_rules(rtype, old, body, subresource), strict)
        )

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str,
        patch: Any,
        subresource: str | None = None,
        strict: bool = False,
    ) -> Obj:
        key = (self._ns(rtype, namespace), name)
        if key not in self._objects[rtype.key] and content_type.startswith(patching.APPLY):
            body = copy.deepcopy(patch)  # server-side apply of a new object creates it
            body.setdefault("metadata", {})["name"] = name
            return self.create(rtype, namespace, body, strict)
        old = self._current(rtype, namespace, name)
        if isinstance(patch, dict) and not content_type.startswith(patching.JSON_PATCH):
            self._check_precondition(rtype, old, patch)
        new = patching.apply_patch(content_type, copy.deepcopy(old), patch)
        if not isinstance(new, dict):
            raise errors.bad_request("the patch result is not an object")
        return self._commit(
            rtype, old, self._admit(rtype, self._apply_rules(rtype, old, new, subresource), strict)
        )

    def delete(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        old = self._current(rtype, namespace, name)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return copy.deepcopy(old)
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(rtype, old, new)
        self._remove(rtype, old)
        return copy.deepcopy(old)

    def delete_collection(
        self,
        rtype: ResourceType,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
    ) -> list[Obj]:
        return [
            self.delete(rtype, o["metadata"].get("namespace"), o["metadata"]["name"])
            for o in self.list_objects(rtype, namespace, label_selector, field_selector)
        ]

    # --- internals ---------------------------------------------------------------------------

    def _ns(self, rtype: ResourceType, namespace: str | None) -> str:
        return (namespace or "default") if rtype.namespaced else ""

    def _gr(self, rtype: ResourceType) -> str:
        return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural

    def _current(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._objects[rtype.key].get((self._ns(rtype, namespace), name))
        if obj is None:
            raise errors.not_found(self._gr(rtype), name)
        return obj

    def _admit(self, rtype: ResourceType, obj: Obj, strict: bool) -> Obj:
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

    def _check_precondition(self, rtype: ResourceType, old: Obj, body: Obj) -> None:
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise errors.conflict(self._gr(rtype), old["metadata"]["name"])

    def _apply_rules(self, rtype: ResourceType, old: Obj, new: Obj, subresource: str | None) -> Obj:
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
        if _spec_part(new) != _spec_part(old):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        return new

    def _commit(self, rtype: ResourceType, old: Obj, new: Obj) -> Obj:
        self._after_write(rtype, new)
        if new == old:
            return copy.deepcopy(old)  # a no-op write changes nothing, not even resourceVersion
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(rtype, new)
            return copy.deepcopy(new)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._objects[rtype.key][(meta.get("namespace", ""), meta["name"])] = new
        self._emit(rtype, "MODIFIED", new)
        return copy.deepcopy(new)

    def _remove(self, rtype: ResourceType, obj: Obj) -> None:
        meta = obj["metadata"]
        self._objects[rtype.key].pop((meta.get("namespace", ""), meta["name"]), None)
        self._rv += 1
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._emit(rtype, "DELETED", gone)
        if rtype.kind == "CustomResourceDefinition":
            self._unregister_crd(meta["name"])
        self._collect_garbage(meta["uid"])

    def _owner_missing(self, obj: Obj) -> bool:
        refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid")]
        if not refs:
            return False
        live = {o["metadata"]["uid"] for objs in self._objects.values() for o in objs.values()}
        return all(r["uid"] not in live for r in refs)

    def _collect_garbage(self, owner_uid: str) -> None:
        """Background cascading deletion: dependents of a deleted owner go too."""
        for key in list(self._objects):
            rtype = self.types.get(key)
            if rtype is None:
                continue
            for obj in list(self._objects[key].values()):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == owner_uid for r in refs):
                    try:
                        self.delete(rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"])
                    except errors.ApiError:
                        pass  # already gone through another owner

    # --- custom resource definitions ---------------------------------------------------------

    def _after_write(self, rtype: ResourceType, obj: Obj) -> None:
        if rtype.kind == "CustomResourceDefinition" and rtype.group == "apiextensions.k8s.io":
            self._register_crd(obj)

    def _register_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        if not spec.get("group") or not names.get("plural") or not names.get("kind"):
            raise errors.invalid(
                "CustomResourceDefinition",
                crd["metadata"].get("name", ""),
                "spec.group, spec.names.plural and spec.names.kind are required",
            )
        self._unregister_crd(crd["metadata"]["name"], keep_objects=True)
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            rtype = ResourceType(
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
            self.register(rtype)
        stamp = now_rfc3339()
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": stamp}
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }
        old = (crd.get("metadata") or {}).get("name")
        existing = self._objects.get("apiextensions.k8s.io/v1/customresourcedefinitions", {})
        previous = existing.get(("", old or ""))
        if previous is not None and previous.get("status", {}).get("conditions"):
            # Keep transition times stable so a re-apply is a no-op.
            crd["status"]["conditions"] = previous["status"]["conditions"]

    def _unregister_crd(self, crd_name: str, keep_objects: bool = False) -> None:
        for key, rtype in list(self.types.items()):
            if rtype.crd_name != crd_name:
                continue
            if not keep_objects:
                for obj in list(self._objects.get(key, {}).values()):
                    self._remove(rtype, obj)
                del self._objects[key]
            del self.types[key]

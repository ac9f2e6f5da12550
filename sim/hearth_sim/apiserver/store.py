"""The API server's object store: what kube-apiserver guarantees, without etcd.

One global resourceVersion counter; every change an event in the watch log (watch_log.py).
Server-filled metadata, optimistic concurrency (409), finalizers, owner-reference garbage
collection and CRD registration live here; what a write may change (generation bumps on spec
changes only, the status subresource's split) and what a CRD serves are write_rules.py's.
No I/O: the HTTP layer (server.py) calls in and streams out.
"""

from __future__ import annotations

import copy
from typing import Any

from hearth_sim.apiserver import errors, patching, write_rules
from hearth_sim.apiserver.resources import Obj, ResourceType, Watch, now_rfc3339
from hearth_sim.apiserver.selectors import field_matcher, label_matcher
from hearth_sim.apiserver.watch_log import WatchLog


class Store:
    def __init__(self, history: int = 50_000) -> None:
        self.types: dict[str, ResourceType] = {}
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._rv = 0
        self.log = WatchLog(history)

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
            raise errors.not_found(write_rules.group_resource(rtype), name)
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
        """Register a watch (watch_log.py): from what exists, or from a resourceVersion."""
        return self.log.start(
            rtype,
            namespace,
            name,
            label_selector,
            field_selector,
            resource_version,
            send_initial_events,
            self.resource_version,
            lambda: self.list_objects(rtype, namespace),
        )

    @property
    def watches(self) -> set[Watch]:
        return self.log.watches

    def unwatch(self, w: Watch) -> None:
        self.log.stop(w)

    def _emit(self, rtype: ResourceType, kind: str, obj: Obj) -> None:
        self.log.emit(self._rv, rtype, kind, obj)

    # --- writes ------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str | None, body: Any, strict: bool = False) -> Obj:
        obj = write_rules.new_object(rtype, namespace, body)
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        if key in self._objects[rtype.key]:
            raise errors.already_exists(write_rules.group_resource(rtype), meta["name"])
        obj = write_rules.admit(rtype, obj, strict)
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
        write_rules.check_precondition(rtype, old, body)
        return self._commit(
            rtype,
            old,
            write_rules.admit(rtype, write_rules.apply_rules(rtype, old, body, subresource), strict),
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
            write_rules.check_precondition(rtype, old, patch)
        new = patching.apply_patch(content_type, copy.deepcopy(old), patch)
        if not isinstance(new, dict):
            raise errors.bad_request("the patch result is not an object")
        return self._commit(
            rtype,
            old,
            write_rules.admit(rtype, write_rules.apply_rules(rtype, old, new, subresource), strict),
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

    def _current(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._objects[rtype.key].get((self._ns(rtype, namespace), name))
        if obj is None:
            raise errors.not_found(write_rules.group_resource(rtype), name)
        return obj

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
        """Serve the CRD's types (write_rules.crd_types) and fill in its status."""
        self._unregister_crd(crd["metadata"]["name"], keep_objects=True)
        for rtype in write_rules.crd_types(crd):
            self.register(rtype)
        existing = self._objects.get("apiextensions.k8s.io/v1/customresourcedefinitions", {})
        crd["status"] = write_rules.crd_status(crd, existing.get(("", crd["metadata"].get("name") or "")))

    def _unregister_crd(self, crd_name: str, keep_objects: bool = False) -> None:
        for key, rtype in list(self.types.items()):
            if rtype.crd_name != crd_name:
                continue
            if not keep_objects:
                for obj in list(self._objects.get(key, {}).values()):
                    self._remove(rtype, obj)
                del self._objects[key]
            del self.types[key]

"""The API server's event log and its watches: every change is an event kept in a bounded
history, so a watch can start from any recent resourceVersion with nothing replayed twice and
nothing missed; older ones get 410 Gone, as from kube-apiserver. No I/O."""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable

from hearth_sim.apiserver import errors
from hearth_sim.apiserver.resources import INITIAL_EVENTS_END, Event, Obj, ResourceType, Watch
from hearth_sim.apiserver.selectors import field_matcher, label_matcher


class WatchLog:
    def __init__(self, history: int) -> None:
        self.history: deque[tuple[int, str, Event]] = deque(maxlen=history)
        self.compacted = 0  # events at or below this resourceVersion may be gone
        self.watches: set[Watch] = set()

    def start(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str | None,
        label_selector: str | None,
        field_selector: str | None,
        resource_version: str | None,
        send_initial_events: bool,
        now: str,
        existing: Callable[[], list[Obj]],
    ) -> Watch:
        """Register a watch. With no (or "0") resourceVersion, or with sendInitialEvents, it
        starts with ADDED for what exists (`existing()`, the objects at resourceVersion `now`);
        with a resourceVersion, it replays the history after it. Synchronous, so nothing can
        change between the snapshot and the registration."""
        w = Watch(rtype, namespace, name, label_matcher(label_selector), field_matcher(field_selector))
        try:
            since = int(resource_version) if resource_version else 0
        except ValueError:
            raise errors.bad_request(f"invalid resourceVersion {resource_version!r}") from None
        if since == 0 or send_initial_events:
            for obj in existing():
                if w.matches(obj):
                    w.queue.put_nowait({"type": "ADDED", "object": obj})
            if send_initial_events:
                bookmark = {
                    "kind": rtype.kind,
                    "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": now, "annotations": {INITIAL_EVENTS_END: "true"}},
                }
                w.queue.put_nowait({"type": "BOOKMARK", "object": bookmark})
        elif since < self.compacted:
            gone = errors.gone(f"too old resource version: {since} ({self.compacted})")
            w.queue.put_nowait({"type": "ERROR", "object": gone.status()})
        else:
            for rv, key, event in self.history:
                if rv > since and key == rtype.key and w.matches(event["object"]):
                    w.queue.put_nowait(copy.deepcopy(event))
        self.watches.add(w)
        return w

    def stop(self, w: Watch) -> None:
        self.watches.discard(w)

    def emit(self, rv: int, rtype: ResourceType, kind: str, obj: Obj) -> None:
        event = {"type": kind, "object": copy.deepcopy(obj)}
        if len(self.history) == self.history.maxlen:
            self.compacted = self.history[0][0]
        self.history.append((rv, rtype.key, event))
        for w in self.watches:
            if w.rtype.key == rtype.key and w.matches(obj):
                w.queue.put_nowait(copy.deepcopy(event))

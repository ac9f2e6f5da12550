"""The homelab's Deployment rollouts and Service names (sim/hearth_sim/rollout.py, services.py):
a RollingUpdate with `maxUnavailable: 0` never leaves fewer Ready pods than wanted, and the
names pods give for Services are found in their env values."""

from __future__ import annotations

from typing import Any

from hearth_sim.rollout import step
from hearth_sim.services import Rotation, ready_targets, service_names

Obj = dict[str, Any]


def pod(name: str, ready: bool, at: int) -> Obj:
    return {
        "metadata": {"name": name, "creationTimestamp": f"2026-12-07T00:00:{at:02d}Z"},
        "spec": {"containers": [{"name": "c", "ports": [{"name": "redis", "containerPort": 6379}]}]},
        "status": {
            "podIP": f"127.0.0.{at}",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def deployment(replicas: int, strategy: Obj | None = None) -> Obj:
    return {"spec": {"replicas": replicas, **({"strategy": strategy} if strategy else {})}}


ROLLING = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def test_a_rolling_update_without_unavailability_surges_then_stops_an_old_pod_per_new_ready_one() -> None:
    d = deployment(2, ROLLING)
    old = [pod("old-a", True, 1), pod("old-b", True, 2)]
    first = step(d, [], old)
    assert first.create == 1 and first.delete == [], "one new pod, no old one stopped yet"
    starting = [pod("new-a", False, 3)]
    assert step(d, starting, old).create == 0 and step(d, starting, old).delete == []
    ready = [pod("new-a", True, 3)]
    second = step(d, ready, old)
    assert [p["metadata"]["name"] for p in second.delete] == ["old-a"], "the oldest, once one new is Ready"
    third = step(d, ready, old[1:])
    assert third.create == 1 and third.delete == []
    last = step(d, [*ready, pod("new-b", True, 4)], old[1:])
    assert [p["metadata"]["name"] for p in last.delete] == ["old-b"] and last.create == 0


def test_ready_pods_never_drop_below_the_wanted_count_while_rolling() -> None:
    """Walk a whole rollout, new pods turning Ready one step after they are made."""
    d = deployment(3, ROLLING)
    stale = [pod(f"old-{i}", True, i) for i in range(3)]
    fresh: list[Obj] = []
    made = 10
    for _ in range(20):
        fresh = [pod(p["metadata"]["name"], True, made) for p in fresh]  # last step's pods are Ready now
        todo = step(d, fresh, stale)
        gone = {p["metadata"]["name"] for p in todo.delete}
        stale = [p for p in stale if p["metadata"]["name"] not in gone]
        assert len(stale) + len(fresh) >= 3, "maxUnavailable 0: the Ready count held"
        for _ in range(todo.create):
            made += 1
            fresh.append(pod(f"new-{made}", False, made))
        assert len(stale) + len(fresh) <= 4, "maxSurge 1"
        if not stale and len(fresh) == 3 and not todo.create:
            break
    assert not stale and len(fresh) == 3


def test_recreate_stops_every_old_pod_and_the_default_is_a_rolling_update() -> None:
    old = [pod("old-a", True, 1)]
    recreate = step(deployment(1, {"type": "Recreate"}), [], old)
    assert recreate.delete == old and recreate.create == 1
    default = step(deployment(1), [], old)  # 25 % of 1: surge 1, unavailable 0
    assert default.create == 1 and default.delete == []


def test_pods_beyond_the_wanted_count_are_stopped_newest_first() -> None:
    todo = step(deployment(1, ROLLING), [pod("a", True, 1), pod("b", True, 2)], [])
    assert [p["metadata"]["name"] for p in todo.delete] == ["b"] and todo.create == 0


def test_service_names_in_env_values_are_found_with_their_port() -> None:
    assert service_names("redis://hearth-store.lab.svc:6379/0") == [("lab", "hearth-store", 6379)]
    assert service_names("http://a.b.svc.cluster.local:80/x and c.d.svc:1") == [("b", "a", 80), ("d", "c", 1)]
    assert service_names("https://example.com:443/") == []
    assert service_names("hearth-store.lab.svc") == [], "without a port there is nothing to forward"


def test_only_ready_pods_that_are_not_stopping_are_targets_in_turn() -> None:
    stopping = pod("c", True, 3)
    stopping["metadata"]["deletionTimestamp"] = "2026-12-07T00:01:00Z"
    pods = [pod("a", True, 1), pod("b", False, 2), stopping, pod("d", True, 4)]
    targets = ready_targets(pods, {"port": 6379, "targetPort": "redis"})
    assert targets == ["127.0.0.1:6379", "127.0.0.4:6379"]
    turn = Rotation()
    assert [turn.pick(targets) for _ in range(3)] == [targets[0], targets[1], targets[0]]
    assert turn.pick([]) is None

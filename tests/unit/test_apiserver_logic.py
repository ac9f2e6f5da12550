"""Pure parts of the simulated API server: patches, selectors, Tables, scheduling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hearth_sim import jobs, scheduling
from hearth_sim.apiserver import errors, patching, tables
from hearth_sim.apiserver.selectors import field_matcher, label_matcher
from hearth_sim.apiserver.server import parse_resource_path


def test_merge_patch_deletes_with_null_and_replaces_lists() -> None:
    doc = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert patching.merge_patch(doc, {"a": {"b": None, "d": 3}, "l": [3]}) == {
        "a": {"c": 2, "d": 3},
        "l": [3],
    }


def test_strategic_merge_merges_named_lists() -> None:
    doc = {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
    patch = {
        "$setElementOrder/containers": [],
        "containers": [{"name": "b", "image": "z"}, {"name": "a", "$patch": "delete"}],
    }
    assert patching.strategic_merge_patch(doc, patch) == {"containers": [{"name": "b", "image": "z"}]}


def test_json_patch_ops_and_failed_test() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    ops = [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "remove", "path": "/b/c"},
        {"op": "copy", "from": "/a/0", "path": "/b/d"},
        {"op": "test", "path": "/a/2", "value": 3},
    ]
    assert patching.json_patch(doc, ops) == {"a": [1, 2, 3], "b": {"d": 1}}
    with pytest.raises(errors.ApiError) as info:
        patching.json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])
    assert info.value.code == 422
    assert doc == {"a": [1, 2], "b": {"c": 1}}, "a failed patch must not touch the input"


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("app=x", ["1"]),
        ("app!=x", ["2", "3"]),
        ("app in (x,y)", ["1", "2"]),
        ("app notin (x)", ["2", "3"]),
        ("tier", ["1"]),
        ("!tier", ["2", "3"]),
        ("app=x,tier=gpu", ["1"]),
        ("", ["1", "2", "3"]),
    ],
)
def test_label_selectors(selector: str, names: list[str]) -> None:
    objs = [
        {"metadata": {"name": "1", "labels": {"app": "x", "tier": "gpu"}}},
        {"metadata": {"name": "2", "labels": {"app": "y"}}},
        {"metadata": {"name": "3"}},
    ]
    match = label_matcher(selector)
    assert [o["metadata"]["name"] for o in objs if match(o)] == names


def test_field_selectors() -> None:
    event = {"metadata": {"name": "e"}, "involvedObject": {"name": "small", "kind": "Pod"}}
    assert field_matcher("involvedObject.name=small,involvedObject.kind=Pod")(event)
    assert not field_matcher("involvedObject.name!=small")(event)
    with pytest.raises(errors.ApiError):
        field_matcher("garbage")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5, "5s"),
        (119, "119s"),
        (185, "3m5s"),
        (900, "15m"),
        (3 * 3600 + 120, "3h2m"),
        (30 * 3600, "30h"),
        (3 * 86400, "3d"),
    ],
)
def test_ages_read_like_kubectl(seconds: float, text: str) -> None:
    assert tables.human_age(seconds) == text


def test_printer_columns_make_a_table() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    created = (now - timedelta(seconds=42)).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj = {"metadata": {"name": "a", "creationTimestamp": created}, "status": {"phase": "Warm"}}
    cols = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    table = tables.table("ModelDeployment", cols, [obj], "7", now)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Phase", "Age"]
    assert table["rows"][0]["cells"] == ["a", "Warm", "42s"]
    assert tables.wants_table("application/json;as=Table;v=v1;g=meta.k8s.io, application/json")
    assert not tables.wants_table("application/json")


@pytest.mark.parametrize(
    ("path", "parsed"),
    [
        ("/api/v1/namespaces", ("", "v1", "namespaces", None, None, None)),
        ("/api/v1/namespaces/default", ("", "v1", "namespaces", None, "default", None)),
        ("/api/v1/namespaces/default/status", ("", "v1", "namespaces", None, "default", "status")),
        ("/api/v1/namespaces/ns/pods/p/status", ("", "v1", "pods", "ns", "p", "status")),
        ("/apis/apps/v1/deployments", ("apps", "v1", "deployments", None, None, None)),
        ("/apis/apps/v1/watch/namespaces/ns/deployments", ("apps", "v1", "deployments", "ns", None, None)),
    ],
)
def test_resource_paths(path: str, parsed: tuple[Any, ...]) -> None:
    t = parse_resource_path(path)
    assert t is not None
    assert (t.group, t.version, t.plural, t.namespace, t.name, t.subresource) == parsed


def _node(name: str, gpus: int, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
        "status": {"allocatable": {"nvidia.com/gpu": str(gpus)} if gpus else {}},
    }


def test_scheduler_honours_selector_affinity_and_free_gpus() -> None:
    nodes = [_node("gpu-3070", 1, cls="3070"), _node("gpu-3090", 1, cls="3090"), _node("cpu-0", 0)]
    gpu_pod = {"containers": [{"resources": {"limits": {"nvidia.com/gpu": 1}}}]}
    assert scheduling.choose_node({**gpu_pod, "nodeSelector": {"cls": "3090"}}, nodes, {})[0] == "gpu-3090"
    node, reason = scheduling.choose_node(
        {**gpu_pod, "nodeSelector": {"cls": "3090"}}, nodes, {"gpu-3090": 1}
    )
    assert node is None and "Insufficient nvidia.com/gpu" in reason
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "cls", "operator": "In", "values": ["3070"]}]}
                ]
            }
        }
    }
    assert scheduling.choose_node({**gpu_pod, "affinity": affinity}, nodes, {})[0] == "gpu-3070"
    node, reason = scheduling.choose_node({"nodeSelector": {"cls": "4090"}}, nodes, {})
    assert node is None and "didn't match" in reason


def test_deployment_status_counts_ready_and_updated_pods() -> None:
    dep = {"metadata": {"name": "d", "generation": 3}, "spec": {"replicas": 2, "template": {"x": 1}}}
    h = scheduling.template_hash(dep)
    pods = [
        {
            "metadata": {"labels": {"pod-template-hash": h}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
        {"metadata": {"labels": {"pod-template-hash": "old"}}, "status": {}},
    ]
    status = scheduling.deployment_status(dep, pods)
    assert (status["replicas"], status["readyReplicas"], status["updatedReplicas"]) == (2, 1, 1)
    assert status["observedGeneration"] == 3
    assert status["conditions"][0] == {**status["conditions"][0], "type": "Available", "status": "False"}


# --- the simulated Job controller ------------------------------------------------------------------


def job(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "w", "namespace": "ai", "uid": "j1"}, "spec": {"template": {}, **spec}}


def job_pod(
    phase: str, exit_code: int | None = None, created: str = "2026-11-28T12:00:00Z"
) -> dict[str, Any]:
    state = {"terminated": {"exitCode": exit_code}} if exit_code is not None else {"running": {}}
    return {
        "metadata": {"name": f"w-{created}", "creationTimestamp": created},
        "status": {"phase": phase, "containerStatuses": [{"state": state}]},
    }


def test_a_job_starts_one_pod_and_completes_when_it_succeeds() -> None:
    assert jobs.verdict(job(), [], "t").start_pod
    running = jobs.verdict(job(), [job_pod("Running")], "t")
    assert not running.start_pod and running.status["active"] == 1
    done = jobs.verdict(job(), [job_pod("Succeeded", 0)], "t")
    assert done.status["conditions"][0]["type"] == "Complete" and done.status["succeeded"] == 1


def test_a_failed_pod_is_retried_with_back_off_until_the_limit() -> None:
    failed = jobs.verdict(job(backoffLimit=1), [job_pod("Failed", 1)], "t")
    assert failed.start_pod and failed.failures == 1
    pods = [job_pod("Failed", 1, "2026-11-28T12:00:00Z"), job_pod("Failed", 1, "2026-11-28T12:00:05Z")]
    gave_up = jobs.verdict(job(backoffLimit=1), pods, "t")
    assert not gave_up.start_pod and gave_up.status["conditions"][0]["reason"] == "BackoffLimitExceeded"


def test_a_pod_failure_policy_fails_the_job_at_once_on_its_exit_codes() -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}]}
    verdict = jobs.verdict(job(podFailurePolicy=policy), [job_pod("Failed", 3)], "t")
    assert not verdict.start_pod
    assert verdict.status["conditions"][0]["reason"] == "PodFailurePolicy"
    assert jobs.verdict(job(podFailurePolicy=policy), [job_pod("Failed", 1)], "t").start_pod


def test_a_claims_capacity_caps_what_its_writers_may_write() -> None:
    from hearth_sim.pod_spec import claim_capacity, quantity_bytes

    assert (
        quantity_bytes("40Mi") == 40 << 20 and quantity_bytes("1G") == 10**9 and quantity_bytes("512") == 512
    )
    pod = {"spec": {"volumes": [{"name": "c", "persistentVolumeClaim": {"claimName": "cache"}}]}}
    claim = {"spec": {"resources": {"requests": {"storage": "40Mi"}}}}
    writer = {"volumeMounts": [{"name": "c", "mountPath": "/cache"}]}
    reader = {"volumeMounts": [{"name": "c", "mountPath": "/models", "readOnly": True}]}
    assert claim_capacity(pod, writer, {"cache": claim}) == 40 << 20
    assert claim_capacity(pod, reader, {"cache": claim}) is None  # only writers are capped

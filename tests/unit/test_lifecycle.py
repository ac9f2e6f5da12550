"""The lifecycle as a pure function, table-driven: (spec, pods, placement, clock) → phase."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hearth_api import estimates
from hearth_api.model_deployment import (
    ConditionType,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelSource,
    Phase,
    Reason,
    prior_warmup_seconds,
)
from hearth_api.times import parse_time, rfc3339
from hearth_operator import lifecycle
from hearth_operator.lifecycle import Inputs, plan
from hearth_operator.placement import Decision, GpuNode
from hearth_operator.pods import PodView
from tests.unit.pinned import Pinned

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
N3090 = GpuNode("gpu-3090", "rtx3090", 24)


def stamp(seconds_ago: float) -> str:
    return rfc3339(NOW - timedelta(seconds=seconds_ago))


def md(
    *,
    status: dict[str, Any] | None = None,
    wake_s_ago: float | None = None,
    activity_s_ago: float | None = None,
    min_replicas: int = 0,
    idle: int = 300,
    sleep_s_ago: float | None = None,
) -> ModelDeployment:
    annotations = {}
    if sleep_s_ago is not None:
        annotations["hearth.dev/sleep-requested-at"] = stamp(sleep_s_ago)
    if wake_s_ago is not None:
        annotations["hearth.dev/wake-requested-at"] = stamp(wake_s_ago)
    if activity_s_ago is not None:
        annotations["hearth.dev/last-activity"] = stamp(activity_s_ago)
    return ModelDeployment.model_validate(
        {
            "metadata": {
                "name": "medium",
                "namespace": "default",
                "generation": 2,
                "annotations": annotations,
            },
            "spec": {
                "model": "medium",
                "engine": "sim",
                "gpu": {"class": "rtx3090", "vramGiB": 14},
                "scaling": {"minReplicas": min_replicas, "idleTimeoutSeconds": idle},
                "warmup": {"expectedSeconds": 15},
            },
            "status": status or {},
        }
    )


LOADING = {"phase": "Loading", "node": "gpu-3090", "gpuClass": "rtx3090", "loadingSince": stamp(12)}
WARM = {"phase": "Warm", "node": "gpu-3090", "gpuClass": "rtx3090"}
READY = PodView("medium-1", "127.10.0.5", ready=True)
STARTING = PodView("medium-1", "127.10.0.5", ready=False)
PLACED = Decision(node=N3090)

CASES = [
    # name, model, pods, decision, held node, expected (phase, replicas)
    ("never woken stays cold", md(), [], None, None, (Phase.COLD, 0)),
    ("wake places and loads", md(wake_s_ago=1), [], PLACED, None, (Phase.LOADING, 1)),
    (
        "a starting pod is loading",
        md(wake_s_ago=1, status=LOADING),
        [STARTING],
        None,
        N3090,
        (Phase.LOADING, 1),
    ),
    ("a ready pod is warm", md(wake_s_ago=1, status=LOADING), [READY], None, N3090, (Phase.WARM, 1)),
    (
        "idle past the timeout scales to zero",
        md(wake_s_ago=400, status=WARM),
        [READY],
        None,
        N3090,
        (Phase.COLD, 0),
    ),
    (
        "recent activity keeps it warm",
        md(wake_s_ago=400, activity_s_ago=20, status=WARM),
        [READY],
        None,
        N3090,
        (Phase.WARM, 1),
    ),
    (
        "never cut a load short",
        md(wake_s_ago=400, status=LOADING),
        [STARTING],
        None,
        N3090,
        (Phase.LOADING, 1),
    ),
    ("minReplicas keeps it warm", md(min_replicas=1), [], PLACED, None, (Phase.LOADING, 1)),
    (
        "no room is unschedulable",
        md(wake_s_ago=1),
        [],
        Decision(message="rtx3090 on gpu-3090 holds big"),
        None,
        (Phase.UNSCHEDULABLE, 0),
    ),
    (
        "waiting for an eviction",
        md(wake_s_ago=1),
        [],
        Decision(node=N3090, victims=("default/big",), message="Freeing"),
        None,
        (Phase.LOADING, 0),
    ),
    (
        "unrunnable image fails",
        md(wake_s_ago=1, status=LOADING),
        [replace(STARTING, waiting_reason="ErrImagePull", waiting_message="no such image")],
        None,
        N3090,
        (Phase.FAILED, 1),
    ),
    (
        "crash looping fails",
        md(wake_s_ago=1, status=LOADING),
        [replace(STARTING, restarts=3, waiting_reason="CrashLoopBackOff", last_exit_code=3)],
        None,
        N3090,
        (Phase.FAILED, 1),
    ),
    (
        "one crash is still loading",
        md(wake_s_ago=1, status=LOADING),
        [replace(STARTING, restarts=1, waiting_reason="CrashLoopBackOff")],
        None,
        N3090,
        (Phase.LOADING, 1),
    ),
]


@pytest.mark.parametrize(
    ("model", "pods", "decision", "held", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_phase_table(
    model: ModelDeployment,
    pods: list[PodView],
    decision: Decision | None,
    held: GpuNode | None,
    expected: tuple[Phase, int],
) -> None:
    result = plan(Inputs(md=model, pods=pods, now=NOW, node=held, cluster=Pinned(decision)))
    assert (result.status.phase, result.replicas) == expected, result.status.message


def test_warm_publishes_endpoints_and_measures_the_warmup() -> None:
    result = plan(Inputs(md=md(wake_s_ago=13, status=LOADING), pods=[READY], now=NOW, node=N3090))
    s = result.status
    assert s.endpoints == ["http://127.10.0.5:8000"]
    assert s.warmup.samples == [12.0] and s.warmup.last_seconds == 12.0
    assert s.warmup.by_gpu_class == {"rtx3090": [12.0]}
    assert s.warmup.estimate_seconds == 12.0
    assert [e[1] for e in result.events] == ["Warm"] and "warmed up in 12.0 s" in result.events[0][2]
    ready = next(c for c in s.conditions if c.type == "Ready")
    assert ready.status == "True" and ready.observed_generation == 2


def test_loading_keeps_its_start_time_and_eviction_records_when() -> None:
    loading = plan(Inputs(md=md(wake_s_ago=1, status=LOADING), pods=[STARTING], now=NOW, node=N3090)).status
    assert loading.loading_since == parse_time(LOADING["loadingSince"])
    evicted = plan(
        Inputs(md=md(wake_s_ago=1, status=WARM), pods=[READY], now=NOW, node=N3090, evicted_for="big")
    )
    assert evicted.status.phase is Phase.EVICTING and evicted.replicas == 0
    assert evicted.status.evicted_at == NOW
    # An evicted model does not come back on the wake that was before its eviction.
    cold = md(wake_s_ago=1, status={"phase": "Cold", "evictedAt": stamp(0)})
    assert not lifecycle.wanted(cold, [], NOW)


def test_a_load_longer_than_the_idle_timeout_still_gets_its_idle_period() -> None:
    warm = plan(Inputs(md=md(wake_s_ago=30, idle=10, status=LOADING), pods=[READY], now=NOW, node=N3090))
    assert warm.status.phase is Phase.WARM
    later = md(wake_s_ago=35, idle=10, status=warm.status.model_dump(by_alias=True, mode="json"))
    assert lifecycle.wanted(later, [READY], NOW + timedelta(seconds=5))
    assert not lifecycle.wanted(later, [READY], NOW + timedelta(seconds=11))


def test_invalid_specs_fail_naming_the_field() -> None:
    result = plan(Inputs(md=md(), pods=[], now=NOW, holder=("spec.model", "x", {"metadata": {"name": "a"}})))
    assert result.status.phase is Phase.FAILED and result.replicas == 0
    assert result.events == [("Warning", "Failed", "spec.model: 'x' is already served by modeldeployment/a")]


def test_no_event_when_nothing_changes() -> None:
    first = plan(Inputs(md=md(wake_s_ago=1, status=LOADING), pods=[STARTING], now=NOW, node=N3090))
    again = plan(
        Inputs(
            md=md(wake_s_ago=1, status=first.status.model_dump(by_alias=True, mode="json")),
            pods=[STARTING],
            now=NOW + timedelta(seconds=1),
            node=N3090,
        )
    )
    assert again.events == []
    assert again.status.model_dump() == first.status.model_dump()


@pytest.mark.parametrize(
    ("samples", "expected", "vram", "estimate"),
    [
        ([], None, 6, 5.0),
        ([], None, 14, 15.0),
        ([], None, 20, 30.0),
        ([], 42.0, 20, 42.0),
        ([10, 11, 50], None, 6, 11.0),
        ([1, 1, 1, 1, 1, 9, 9, 9], None, 6, 9.0),
    ],
)
def test_estimates(samples: list[float], expected: float | None, vram: int, estimate: float) -> None:
    spec = ModelDeploymentSpec.model_validate(
        {"model": "m", "engine": "sim", "gpu": {"vramGiB": vram}, "warmup": {"expectedSeconds": expected}}
    )
    assert estimates.estimate(samples, prior_warmup_seconds(spec)) == estimate


def test_samples_keep_the_last_twenty() -> None:
    samples: list[float] = []
    for i in range(25):
        samples = estimates.add_sample(samples, float(i))
    assert samples == [float(i) for i in range(5, 25)]


def test_waiting_for_room_names_the_models_being_unloaded_as_fields() -> None:
    decision = Decision(
        node=N3090, victims=("default/big",), waiting_for=("default/old",), message="prose for people"
    )
    result = plan(Inputs(md=md(wake_s_ago=1), pods=[], now=NOW, cluster=Pinned(decision)))
    s = result.status
    assert s.phase is Phase.LOADING and s.node is None and s.gpu_class == "rtx3090"
    assert s.evicting is not None and (s.evicting.node, s.evicting.models) == (
        "gpu-3090",
        ["default/old", "default/big"],
    )
    assert s.reason(ConditionType.SCHEDULED) == Reason.EVICTING
    assert result.evict == ("default/big",)
    # Once placed, the eviction is over and the field goes.
    placed = plan(
        Inputs(
            md=md(wake_s_ago=1, status=s.model_dump(by_alias=True, mode="json")),
            pods=[],
            now=NOW,
            cluster=Pinned(PLACED),
        )
    )
    assert placed.status.evicting is None and placed.status.reason(ConditionType.SCHEDULED) == Reason.PLACED


def test_no_node_ever_is_a_reason_not_prose() -> None:
    never = plan(
        Inputs(md=md(wake_s_ago=1), pods=[], now=NOW, cluster=Pinned(Decision(permanent=True, message="x")))
    )
    assert never.status.reason(ConditionType.SCHEDULED) == Reason.NO_SUITABLE_NODE
    assert md(status=never.status.model_dump(by_alias=True, mode="json")).never_fits
    busy = plan(Inputs(md=md(wake_s_ago=1), pods=[], now=NOW, cluster=Pinned(Decision(message="x"))))
    assert busy.status.reason(ConditionType.SCHEDULED) == Reason.UNSCHEDULABLE
    assert not md(status=busy.status.model_dump(by_alias=True, mode="json")).never_fits


def test_a_spec_the_types_refuse_fails_and_keeps_what_was_measured() -> None:
    before = md(status={**WARM, "warmup": {"samples": [12.0], "estimateSeconds": 12.0}}).status
    result = lifecycle.plan_invalid_spec(before, [READY], 3, "invalid spec: spec.gpu.vramGiB: too big", NOW)
    s = result.status
    assert (s.phase, s.message, result.replicas) == (
        Phase.FAILED,
        "invalid spec: spec.gpu.vramGiB: too big",
        0,
    )
    assert s.warmup.samples == [12.0] and s.endpoints == [] and s.node is None
    assert s.reason(ConditionType.SCHEDULED) == Reason.INVALID_SPEC and s.observed_generation == 3
    assert result.events == [("Warning", "InvalidSpec", "invalid spec: spec.gpu.vramGiB: too big")]
    again = lifecycle.plan_invalid_spec(s, [], 3, "invalid spec: spec.gpu.vramGiB: too big", NOW)
    assert again.events == []


@pytest.mark.parametrize("status, pods", [(WARM, [READY]), (LOADING, [STARTING])])
def test_an_unload_request_after_the_last_touch_makes_it_cold(
    status: dict[str, Any], pods: list[PodView]
) -> None:
    out = plan(
        Inputs(md(wake_s_ago=20, activity_s_ago=10, sleep_s_ago=5, status=status), pods, NOW, node=N3090)
    )
    assert (out.status.phase, out.replicas) == (Phase.COLD, 0)
    assert out.status.message == "Unloaded on request; a request wakes it"


def test_a_request_after_an_unload_wakes_it_again() -> None:
    out = plan(Inputs(md(sleep_s_ago=30, activity_s_ago=2, status=WARM), [READY], NOW, node=N3090))
    assert (out.status.phase, out.replicas) == (Phase.WARM, 1)
    woken = plan(Inputs(md(sleep_s_ago=30, wake_s_ago=1), [], NOW, cluster=Pinned(PLACED)))
    assert woken.status.phase is Phase.LOADING


def test_an_unload_request_does_not_scale_below_min_replicas() -> None:
    out = plan(Inputs(md(sleep_s_ago=1, min_replicas=1, status=WARM), [READY], NOW, node=N3090))
    assert (out.status.phase, out.replicas) == (Phase.WARM, 1)


def test_a_load_past_its_deadline_fails_stops_and_stays_failed_until_a_wake_or_a_new_spec() -> None:
    since = {**LOADING, "loadingSince": stamp(700)}  # 700 s ago; deadline max(600, 5 x 15) = 600
    failed = plan(Inputs(md=md(wake_s_ago=700, status=since), pods=[STARTING], now=NOW, node=N3090))
    assert failed.status.phase is Phase.FAILED and failed.replicas == 0
    assert failed.status.message.startswith(
        "not Ready within 600 s: the engine's readiness check (GET /health)"
    )
    degraded = {c.type: c for c in failed.status.conditions}["Degraded"]
    assert degraded.reason == "LoadTimeout"
    assert [e[1] for e in failed.events] == ["Failed"]

    after = failed.status.model_dump(by_alias=True, mode="json")
    later = NOW + timedelta(seconds=30)
    again = plan(Inputs(md=md(wake_s_ago=730, status=after), pods=[], now=later, cluster=Pinned(PLACED)))
    assert again.status.phase is Phase.FAILED and again.replicas == 0 and again.events == []
    # A wake after the failure (the dashboard's "Warm up now", a request) tries again.
    retried = plan(Inputs(md=md(wake_s_ago=-25, status=after), pods=[], now=later, cluster=Pinned(PLACED)))
    assert retried.status.phase is Phase.LOADING and retried.replicas == 1
    # So does a changed spec (a new generation).
    changed = md(wake_s_ago=730, status=after)
    changed.metadata["generation"] = 3
    mended = plan(Inputs(md=changed, pods=[], now=later, cluster=Pinned(PLACED)))
    assert mended.status.phase is not Phase.FAILED


def test_an_engine_that_died_while_warm_is_timed_from_the_restart_not_from_an_old_wake() -> None:
    # The wake that made it Warm was 8 s ago: a restart measured from it would have lost 8 s of
    # its deadline before it began (drill 01 saw a restart fail LoadTimeout that way).
    restarting = plan(Inputs(md=md(wake_s_ago=8, status=WARM), pods=[STARTING], now=NOW, node=N3090))
    assert restarting.status.phase is Phase.LOADING
    assert restarting.status.loading_since == NOW


def test_a_load_within_its_deadline_is_looked_at_again_when_it_ends() -> None:
    loading = md(wake_s_ago=1, idle=3600, status=LOADING)  # the idle deadline is later
    due = lifecycle.next_check(loading, 600.0)
    assert due == parse_time(LOADING["loadingSince"]) + timedelta(seconds=600.5)
    assert (
        plan(Inputs(md=loading, pods=[STARTING], now=NOW, node=N3090, load_timeout=600)).status.phase
        is Phase.LOADING
    )


def test_a_first_start_that_downloads_its_weights_gets_hours_not_minutes() -> None:
    pvc = md(wake_s_ago=1, status=LOADING)
    source = ModelSource(uri="hf://Qwen/Qwen2.5-7B-Instruct")
    fetched = pvc.model_copy(update={"spec": pvc.spec.model_copy(update={"model_source": source})})
    assert lifecycle.load_deadline(fetched, 600) == lifecycle.FIRST_FETCH_SECONDS
    warmup = fetched.status.warmup.model_copy(update={"samples": [40.0]})  # it started before
    started = fetched.model_copy(update={"status": fetched.status.model_copy(update={"warmup": warmup})})
    assert lifecycle.load_deadline(started, 600) == 600
    assert lifecycle.load_deadline(pvc, 600) == 600  # weights on a claim: nothing to fetch


def test_the_plan_asks_placement_only_for_a_wanted_model_that_holds_no_node() -> None:
    def asked(**inputs: Any) -> list[str]:
        log: list[str] = []
        plan(Inputs(now=NOW, cluster=Pinned(PLACED, asked=log), **inputs))
        return log

    assert asked(md=md(wake_s_ago=1), pods=[]) == ["place"]
    assert asked(md=md(), pods=[]) == []  # not wanted
    assert asked(md=md(wake_s_ago=1, status=WARM), pods=[READY], node=N3090) == []  # holds one
    evicted = asked(md=md(wake_s_ago=1, status=WARM), pods=[READY], node=N3090, evicted_for="big")
    assert evicted == []
    # A node that left the cluster holds nothing: the model is placed anew.
    assert asked(md=md(wake_s_ago=1, status=WARM), pods=[], node=None) == ["place"]


def test_a_name_clash_fails_the_newer_model_and_tells_the_one_that_keeps_the_name() -> None:
    older = {"metadata": {"name": "first", "namespace": "default"}}
    result = plan(Inputs(md=md(wake_s_ago=1), pods=[], now=NOW, holder=("spec.model", "medium", older)))
    assert result.status.phase is Phase.FAILED and result.replicas == 0
    assert result.deployment is not None and result.deployment["spec"]["replicas"] == 0
    [(told, (kind, reason, message))] = result.notices
    assert told is older and (kind, reason) == ("Warning", "NameClash")
    assert "modeldeployment/medium also claims 'medium'" in message


def test_the_plan_says_when_the_gpu_is_freed_and_when_it_waits_for_one() -> None:
    cooled = plan(Inputs(md=md(wake_s_ago=400, status=WARM), pods=[READY], now=NOW, node=N3090))
    assert cooled.status.phase is Phase.COLD and cooled.frees_gpu and cooled.eviction_over
    busy = plan(Inputs(md=md(wake_s_ago=1), pods=[], now=NOW, cluster=Pinned(Decision(message="full"))))
    assert busy.status.phase is Phase.UNSCHEDULABLE and busy.wants_gpu and not busy.frees_gpu
    placed = plan(Inputs(md=md(wake_s_ago=1), pods=[], now=NOW, cluster=Pinned(PLACED)))
    assert placed.node == N3090 and not placed.wants_gpu
    assert placed.deployment is not None and placed.deployment["spec"]["replicas"] == 1

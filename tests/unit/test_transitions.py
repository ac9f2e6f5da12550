"""The operator's state machine: no sequence of worlds makes the plan take a phase step that
`hearth_api.transitions` does not declare, and every declared step is one some world takes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hearth_api import transitions
from hearth_api.model_deployment import ModelDeployment, Phase
from hearth_api.times import rfc3339
from hearth_operator.downloads import Fetch, WeightsCache
from hearth_operator.lifecycle import Inputs, plan
from hearth_operator.placement import Decision, GpuNode
from hearth_operator.pods import PodView
from tests.unit.pinned import Pinned

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
N3090 = GpuNode("gpu-3090", "rtx3090", 24)
CACHE = WeightsCache(claim="hearth-weights", image="ghcr.io/hearth-dev/hearth:0.1.0", hf_token_secret="hf")
URI = "hf://acme/tiny-GGUF/tiny-Q4_K_M.gguf"
URI_NEW = "hf://acme/tiny-GGUF/tiny-Q8_0.gguf"

PODS = {
    "ready": PodView("m-1", "127.10.0.5", ready=True),
    "starting": PodView("m-1", "127.10.0.5", ready=False),
    "crashing": PodView("m-1", "127.10.0.5", ready=False, restarts=3, waiting_reason="CrashLoopBackOff"),
    "unrunnable": PodView("m-1", None, ready=False, waiting_reason="ErrImagePull"),
    "terminating": PodView("m-1", "127.10.0.5", ready=True, deleting=True),
}
PLACEMENTS = {
    "none": None,
    "placed": Decision(node=N3090),
    "room being made": Decision(node=N3090, victims=("default/big",), message="freeing gpu-3090"),
    "busy": Decision(message="gpu-3090 is busy"),
    "never": Decision(permanent=True, message="no node has 40 GiB"),
}
FETCHES = {
    "none": None,
    "absent": Fetch("absent"),
    "running": Fetch("running"),
    "done": Fetch("done", bytes=1 << 30),
    "failed": Fetch("failed", reason="NotFound", message="404"),
}
HOLDER = ("spec.model", "m", {"metadata": {"name": "older"}})


def ago(now: datetime, seconds: float | None) -> dict[str, str]:
    return {} if seconds is None else {"at": rfc3339(now - timedelta(seconds=seconds))}


CHOICES: dict[str, list[Any]] = {
    "advance": [0, 1, 5, 20, 400, 4000],  # seconds since the world before
    "wake": [None, 0, 3, 30, 500],  # seconds since each annotation's time (None: unset)
    "activity": [None, 0, 30, 500],
    "sleep": [None, None, None, 0, 100],
    "min_replicas": [0, 0, 0, 1],
    "placement": sorted(PLACEMENTS),
    "held": [False, True],  # the node status.node names is in the cluster
    "evicted_for": [None, None, None, "big"],
    "holder": [None] * 6 + [HOLDER],
    "fetch": sorted(FETCHES),
    "generation": [2, 2, 2, 3],  # 3: the spec changed
    "source": [URI, URI, URI, URI_NEW],  # for a model whose weights Hearth downloads
}
world = st.fixed_dictionaries(
    {name: st.sampled_from(values) for name, values in CHOICES.items()}
    | {"pods": st.lists(st.sampled_from(sorted(PODS)), max_size=2)}
)


def random_world(rng: random.Random) -> dict[str, Any]:
    return {name: rng.choice(values) for name, values in CHOICES.items()} | {
        "pods": rng.sample(sorted(PODS), rng.randint(0, 2))
    }


def model(w: dict[str, Any], now: datetime, status: dict[str, Any], downloads: bool) -> ModelDeployment:
    annotations = {}
    for name, key in (
        ("wake", "wake-requested-at"),
        ("activity", "last-activity"),
        ("sleep", "sleep-requested-at"),
    ):
        if w[name] is not None:
            annotations[f"hearth.dev/{key}"] = ago(now, w[name])["at"]
    spec: dict[str, Any] = {
        "model": "m",
        "engine": "llamacpp" if downloads else "sim",
        "gpu": {"class": "rtx3090", "vramGiB": 4},
        "scaling": {"minReplicas": w["min_replicas"], "idleTimeoutSeconds": 300},
    }
    if downloads:
        spec["modelSource"] = {"uri": w["source"]}
    return ModelDeployment.model_validate(
        {
            "metadata": {
                "name": "m",
                "namespace": "default",
                "generation": w["generation"],
                "annotations": annotations,
            },
            "spec": spec,
            "status": status,
        }
    )


# What the operator's own bookkeeping guarantees of a world, given the phase it wrote last:
# placement evicts only Warm models and forgets the eviction once Cold (evictions are lost on
# a restart, never invented); a Deployment has live pods only after a phase that ran replicas
# (a pod outlives its scale-down by a watch event or two, so Cold may still see one).
EVICTABLE = (Phase.WARM, Phase.EVICTING)
RAN_REPLICAS = (Phase.LOADING, Phase.WARM, Phase.FAILED, Phase.EVICTING, Phase.COLD)


def pods_of(w: dict[str, Any], phase: Phase | None) -> list[PodView]:
    pods = [PODS[p] for p in w["pods"]]
    return pods if phase in RAN_REPLICAS else [p for p in pods if p.deleting]


def run(worlds: list[dict[str, Any]], downloads: bool) -> set[tuple[Phase | None, Phase | None]]:
    """Plan each world in turn, each from the status the one before made; the steps taken."""
    now, status, steps = START, {}, set()
    for w in worlds:
        now += timedelta(seconds=w["advance"])
        md = model(w, now, status, downloads)
        phase = md.status.phase
        result = plan(
            Inputs(
                md=md,
                pods=pods_of(w, phase),
                now=now,
                node=N3090 if w["held"] else None,
                cluster=Pinned(PLACEMENTS[w["placement"]]),
                evicted_for=w["evicted_for"] if phase in EVICTABLE else None,
                holder=w["holder"],
                fetch=FETCHES[w["fetch"]] if downloads else None,
                cache=CACHE if downloads else None,
            )
        )  # raises UndeclaredTransition on a step the table does not declare
        steps.add((md.status.phase, result.status.phase))
        status = result.status.model_dump(by_alias=True, mode="json")
    return steps


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds=st.lists(world, min_size=1, max_size=12), downloads=st.booleans())
def test_no_sequence_of_worlds_takes_an_undeclared_step(
    worlds: list[dict[str, Any]], downloads: bool
) -> None:
    for before, after in run(worlds, downloads):
        assert transitions.allowed(before, after), (before, after)


def test_every_declared_step_is_one_the_plan_takes() -> None:
    """The table allows nothing the plan never does: a step it could drop would hide a change."""
    rng, taken = random.Random(27), set()
    for n in range(1500):
        taken |= run([random_world(rng) for _ in range(rng.randint(1, 12))], downloads=n % 2 == 0)
    declared = {(before, after) for before, afters in transitions.ALLOWED.items() for after in afters}
    assert declared - taken == set()


def test_an_undeclared_step_is_refused_naming_both_phases() -> None:
    with pytest.raises(transitions.UndeclaredTransition, match="default/m: Cold → Evicting"):
        transitions.check(Phase.COLD, Phase.EVICTING, "default/m")

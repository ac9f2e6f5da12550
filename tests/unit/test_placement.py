"""Placement: which node, whom to evict, and what an Unschedulable message says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hearth_api.model_deployment import GpuClass, Phase
from hearth_operator.placement import GpuNode, Resident, Want, gpu_node, place

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
N3070 = GpuNode("gpu-3070", "rtx3070", 8)
N3090 = GpuNode("gpu-3090", "rtx3090", 24)
NODES = [N3070, N3090]


def resident(
    key: str,
    node: str,
    vram: int,
    phase: Phase = Phase.WARM,
    *,
    priority: int = 0,
    active_s_ago: float | None = None,
    idle: float = 300,
    estimate: float = 10,
    pinned: bool = False,
) -> Resident:
    return Resident(
        key=f"default/{key}",
        model=key,
        node=node,
        phase=phase,
        vram_gib=vram,
        priority=priority,
        last_activity=None if active_s_ago is None else NOW - timedelta(seconds=active_s_ago),
        idle_timeout=idle,
        estimate=estimate,
        pinned=pinned,
    )


def want(key: str, cls: GpuClass, vram: int, priority: int = 0) -> Want:
    return Want(key=f"default/{key}", gpu_class=cls, vram_gib=vram, priority=priority)


def test_a_free_node_of_the_class_is_chosen() -> None:
    d = place(want("small", GpuClass.RTX3070, 6), NODES, [], NOW)
    assert d.placed and d.node == N3070


def test_any_class_takes_the_tightest_fit_keeping_the_big_card_free() -> None:
    d = place(want("tiny", GpuClass.ANY, 4), NODES, [], NOW)
    assert d.node == N3070


def test_an_idle_model_is_evicted_to_make_room() -> None:
    d = place(want("big", GpuClass.RTX3090, 20), NODES, [resident("medium", "gpu-3090", 14)], NOW)
    assert d.node == N3090 and d.victims == ("default/medium",)
    assert d.message == "Freeing the 3090 on gpu-3090: unloading medium"


def test_eviction_order_priority_then_idle_then_cheapest() -> None:
    shared = GpuNode("gpu-3090", "rtx3090", 24, slots=4)
    residents = [
        resident("important", "gpu-3090", 8, priority=5),
        resident("recent", "gpu-3090", 8, active_s_ago=400),
        resident("old", "gpu-3090", 8, active_s_ago=4000),
    ]
    d = place(want("new", GpuClass.RTX3090, 8), [shared], residents, NOW)
    assert d.victims == ("default/old",)
    cheap = [resident("slow", "gpu-3090", 12, estimate=40), resident("fast", "gpu-3090", 12, estimate=5)]
    assert place(want("new", GpuClass.RTX3090, 12), [shared], cheap, NOW).victims == ("default/fast",)


def test_busy_loading_and_pinned_models_are_not_evicted() -> None:
    for r in (
        resident("busy", "gpu-3090", 20, active_s_ago=10),
        resident("loading", "gpu-3090", 20, phase=Phase.LOADING),
        resident("pinned", "gpu-3090", 20, pinned=True),
    ):
        d = place(want("big", GpuClass.RTX3090, 20), NODES, [r], NOW)
        assert not d.node and not d.victims
        assert d.message.startswith(f"rtx3090 on gpu-3090 holds {r.model} (20 GiB")


def test_a_higher_priority_newcomer_evicts_a_busy_model() -> None:
    d = place(
        want("vip", GpuClass.RTX3090, 20, priority=10),
        NODES,
        [resident("busy", "gpu-3090", 20, active_s_ago=10)],
        NOW,
    )
    assert d.victims == ("default/busy",)


def test_the_unschedulable_message_names_what_occupies_the_gpu() -> None:
    d = place(
        want("big", GpuClass.RTX3090, 20), NODES, [resident("other", "gpu-3090", 20, active_s_ago=12)], NOW
    )
    assert d.message == "rtx3090 on gpu-3090 holds other (20 GiB, active 12 s ago)"


def test_a_model_larger_than_any_gpu_names_the_field() -> None:
    d = place(want("huge", GpuClass.ANY, 40), NODES, [], NOW)
    assert d.node is None and "gpu.vramGiB=40" in d.message and "gpu-3090 rtx3090 24 GiB" in d.message


def test_waiting_for_an_eviction_in_progress() -> None:
    d = place(
        want("big", GpuClass.RTX3090, 20), NODES, [resident("medium", "gpu-3090", 14, Phase.EVICTING)], NOW
    )
    assert d.waiting_for == ("default/medium",) and not d.victims and not d.placed


def test_device_slots_limit_sharing() -> None:
    one_slot = [GpuNode("gpu-3090", "rtx3090", 24, slots=1)]
    d = place(want("b", GpuClass.RTX3090, 4), one_slot, [resident("a", "gpu-3090", 4, active_s_ago=1)], NOW)
    assert not d.placed and "holds a" in d.message
    two = [GpuNode("gpu-3090", "rtx3090", 24, slots=2)]
    assert place(want("b", GpuClass.RTX3090, 4), two, [resident("a", "gpu-3090", 4)], NOW).placed


def test_gpu_nodes_from_hearth_or_nvidia_labels() -> None:
    ours = {
        "metadata": {
            "name": "a",
            "labels": {"hearth.dev/gpu-class": "rtx3090", "hearth.dev/gpu-vram-gib": "24"},
        },
        "status": {"allocatable": {"nvidia.com/gpu": "2"}},
    }
    assert gpu_node(ours) == GpuNode("a", "rtx3090", 24, 2)
    nvidia = {"metadata": {"name": "b", "labels": {"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3070"}}}
    assert gpu_node(nvidia) == GpuNode("b", "rtx3070", 8, 1)
    assert gpu_node({"metadata": {"name": "cpu", "labels": {}}}) is None

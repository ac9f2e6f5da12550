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


# Label sets as NVIDIA's GPU feature discovery writes them (gpu-feature-discovery 0.17).
GFD_TWO_3090S = {
    "nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3090",
    "nvidia.com/gpu.memory": "24576",
    "nvidia.com/gpu.count": "2",
    "nvidia.com/gpu.family": "ampere",
    "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.present": "true",
}
GFD_SHARED_3070 = {
    "nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3070-SHARED",
    "nvidia.com/gpu.memory": "8192",
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.replicas": "4",
    "nvidia.com/gpu.sharing-strategy": "time-slicing",
}


def labelled(name: str, labels: dict[str, str], allocatable: str | None = None) -> dict[str, object]:
    status = {"allocatable": {"nvidia.com/gpu": allocatable}} if allocatable else {}
    return {"metadata": {"name": name, "labels": labels}, "status": status}


def test_gpu_feature_discovery_labels_need_no_hand_labelling() -> None:
    assert gpu_node(labelled("big", GFD_TWO_3090S, "2")) == GpuNode("big", "rtx3090", 24, slots=2, cards=2)
    shared = gpu_node(labelled("small", GFD_SHARED_3070, "4"))
    assert shared == GpuNode("small", "rtx3070", 8, slots=4, cards=1)
    # Hearth's own labels still override what GFD says.
    relabelled = gpu_node(labelled("x", {**GFD_TWO_3090S, "hearth.dev/gpu-vram-gib": "22"}, "2"))
    assert relabelled is not None and relabelled.vram_gib == 22
    unknown = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.memory": "81920"}
    assert gpu_node(labelled("dc", unknown, "1")) is None  # no class Hearth knows: not placed on


def test_each_card_is_its_own_bin() -> None:
    two = gpu_node(labelled("gpu-2x3090", GFD_TWO_3090S, "2"))
    assert two is not None
    # A 30 GiB model does not "fit" two 24 GiB cards.
    huge = place(want("huge", GpuClass.RTX3090, 30), [two], [], NOW)
    assert huge.node is None and "gpu.vramGiB=30" in huge.message
    # Two 14 GiB models do fit: one on each card.
    d = place(want("second", GpuClass.RTX3090, 14), [two], [resident("first", "gpu-2x3090", 14)], NOW)
    assert d.placed and d.node == two
    # A third does not: 10 GiB left on each card is not 14.
    full = [resident("first", "gpu-2x3090", 14, active_s_ago=1), resident("second", "gpu-2x3090", 14)]
    assert not place(want("third", GpuClass.RTX3090, 14), [two], full, NOW).placed


def test_time_slicing_shares_one_card_by_vram() -> None:
    shared = gpu_node(labelled("gpu-3070", GFD_SHARED_3070, "4"))
    assert shared is not None
    d = place(want("b", GpuClass.RTX3070, 4), [shared], [resident("a", "gpu-3070", 4)], NOW)
    assert d.placed
    busy = [resident("a", "gpu-3070", 4, active_s_ago=1), resident("b", "gpu-3070", 4, active_s_ago=1)]
    assert not place(want("c", GpuClass.RTX3070, 1), [shared], busy, NOW).placed  # 8 GiB used


def test_a_model_on_two_cards_takes_half_its_vram_on_each() -> None:
    two = GpuNode("gpu-2x3090", "rtx3090", 24, slots=2, cards=2)
    pair = Want(key="default/pair", gpu_class=GpuClass.RTX3090, vram_gib=40, gpus=2)
    assert place(pair, [two], [], NOW).placed
    assert not place(pair, [GpuNode("one", "rtx3090", 24, slots=2)], [], NOW).node  # one card: no

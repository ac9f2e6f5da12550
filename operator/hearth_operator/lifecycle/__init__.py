"""A model's lifecycle as pure functions: the world one reconcile sees (inputs.py) → the whole
decision (plan.py): children, the fetch Job, evictions, the new status and its Events.

    Cold ──wake──► (Downloading) ──► Loading ──first replica Ready──► Warm ──idle timeout──► Cold
      ▲       │          │  (waits while a GPU is freed)   │
      │       │          └──crash-looping / unrunnable──► Failed
      │       └──not found / no access / checksum / no room──► Failed
      └──── Evicting ◄──── another model needs the GPU ─┘
    Unschedulable: wanted, but no node of its class can ever or now hold it.
    Downloading: a `uri` source whose weights are not in the cache yet (downloads.py), before
    any GPU is taken; with `prefetch` also while nobody wants the model yet.

Every phase change the plan makes is one declared in `hearth_api.transitions` (checked by
`plan`, property-tested in tests/unit/test_transitions.py).

- wanting.py: when a model is wanted, when a load began and how long it may take;
- outcomes.py: whether to place, and one verdict per situation (failed, evicted, cold, …);
- status.py: a verdict → status, conditions and Events;
- plan.py: all of it, with the children and the fetch Job, as one `Plan`.
"""

from hearth_operator.lifecycle.inputs import Cluster, Inputs, Placer
from hearth_operator.lifecycle.outcomes import FetchAction
from hearth_operator.lifecycle.plan import Plan, plan, plan_invalid_spec
from hearth_operator.lifecycle.wanting import (
    FIRST_FETCH_SECONDS,
    PROGRESS_EVERY,
    load_deadline,
    next_check,
    wanted,
    with_download,
)

__all__ = [
    "FIRST_FETCH_SECONDS",
    "PROGRESS_EVERY",
    "Cluster",
    "FetchAction",
    "Inputs",
    "Placer",
    "Plan",
    "load_deadline",
    "next_check",
    "plan",
    "plan_invalid_spec",
    "wanted",
    "with_download",
]

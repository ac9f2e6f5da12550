"""Which phase may follow which: the operator's state machine in one table. Pure.

`check` is called where the operator makes a status (the plan), so a change of the lifecycle
that takes an undeclared step fails loudly instead of showing users a phase sequence nobody
documented; tests/unit/test_transitions.py drives the plan through random worlds against it.
"""

from __future__ import annotations

from hearth_api.model_deployment import Phase

C, D, L, W, E, U, F = (
    Phase.COLD,
    Phase.DOWNLOADING,
    Phase.LOADING,
    Phase.WARM,
    Phase.EVICTING,
    Phase.UNSCHEDULABLE,
    Phase.FAILED,
)

# Each phase's successors. A phase may always stay itself and always go Failed (a spec the
# operator cannot honour, a name another model serves). Why the others:
ALLOWED: dict[Phase | None, frozenset[Phase]] = {
    # New: Cold unless wanted; Downloading (the weights are fetched first), Loading (placed),
    # Unschedulable (no node can, or can now, hold it).
    None: frozenset({C, D, L, U, F}),
    # Cold: woken (as for new); Warm when woken while its last replica is still up (the
    # scale-down had not reached the pod yet).
    C: frozenset({C, D, L, W, U, F}),
    # Downloading: Cold (unloaded by a user), Loading (done, placed), Unschedulable (done or
    # refused before a byte moved: no card can hold it; placed later when one can).
    D: frozenset({C, D, L, U, F}),
    # Loading: Warm (Ready), Cold (unloaded), Downloading (a new, uncached source in the
    # spec), Unschedulable (its node went away).
    L: frozenset({C, D, L, W, U, F}),
    # Warm: Cold (idle, or unloaded), Evicting (another model needs the GPU), Loading (its
    # engine died or was replaced), Downloading (a new source), Unschedulable (node gone).
    W: frozenset({C, D, L, W, E, U, F}),
    # Evicting ends Cold, always: the waiting model is placed by that Cold.
    E: frozenset({C, E, F}),
    # Unschedulable: placed once room or a node appears; Cold when no longer wanted.
    U: frozenset({C, D, L, U, F}),
    # Failed: a retry (a newer wake or spec) loads or downloads anew; Warm when a crash-looping
    # engine comes up after all; Cold when no longer wanted.
    F: frozenset({C, D, L, W, U, F}),
}


class UndeclaredTransition(ValueError):
    """The operator was about to write a phase the table does not allow after the last one."""


def allowed(before: Phase | None, after: Phase | None) -> bool:
    return after is None or after in ALLOWED[before]


def check(before: Phase | None, after: Phase | None, key: str) -> None:
    if not allowed(before, after):
        raise UndeclaredTransition(
            f"{key or 'a model'}: {before or 'new'} → {after} is not a declared phase transition "
            "(hearth_api/transitions.py)"
        )

"""The world one reconcile sees, as the plan takes it: the model, its pods, its download, the
GPU nodes and who occupies them, the clock. Pure data, read by the reconciler from kopf's
indexes; nothing here decides."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from hearth_api.model_deployment import ModelDeployment
from hearth_operator import placement, vram
from hearth_operator.downloads import Fetch, WeightsCache
from hearth_operator.placement import Decision, GpuNode, Resident, Want
from hearth_operator.pods import PodView
from hearth_operator.vram import Verdict


class Placer(Protocol):
    """What the plan asks of placement, when it decides the model needs a node."""

    def place(self, want: Want, now: datetime) -> Decision: ...
    def never_fits(self, want: Want) -> Decision | None: ...
    def what_fits(self, md: ModelDeployment) -> str: ...


def _nobody() -> list[Resident]:
    return []


@dataclass(frozen=True)
class Cluster:
    """The GPU nodes and the models on them (the operator's latest claims over what the watch
    brought back): placement's world. The residents are read only when the plan places: that
    reads every model, and most reconciles (a cold model touched, a status come back) never
    place — reading them each time made applying 1000 models quadratic."""

    nodes: tuple[GpuNode, ...] = ()
    residents: Callable[[], list[Resident]] = _nobody

    def place(self, want: Want, now: datetime) -> Decision:
        return placement.place(want, list(self.nodes), self.residents(), now)

    def never_fits(self, want: Want) -> Decision | None:
        return placement.never_fits(want, list(self.nodes))

    def what_fits(self, md: ModelDeployment) -> str:
        return vram.what_fits(md, list(self.nodes))


Holder = tuple[str, str, dict[str, Any]]  # an older model that keeps a name: (field, name, body)


@dataclass(frozen=True)
class Inputs:
    md: ModelDeployment
    pods: list[PodView]
    now: datetime
    node: GpuNode | None = None  # the node status.node names, as the index has it (None: none)
    cluster: Placer = field(default_factory=Cluster)
    evicted_for: str | None = None  # set when another model needs this one's GPU
    holder: Holder | None = None  # an older model serving one of this one's names
    load_timeout: float = 600.0  # seconds a load may take at least, before it is Failed
    fetch: Fetch | None = None  # the download of a source Hearth fetches; None: none needed
    job: dict[str, Any] | None = None  # the model's fetch Job, as the index has it
    cache: WeightsCache | None = None  # where Hearth downloads `uri` sources; None: engines fetch
    estimate: Verdict | None = None  # the VRAM estimate's verdict, for models whose headers are read

    @property
    def failure(self) -> str | None:
        """A spec the operator cannot honour, naming the field: the newer claim on a name fails."""
        if self.holder is None:
            return None
        field_name, name, body = self.holder
        return f"{field_name}: {name!r} is already served by modeldeployment/{body['metadata']['name']}"

"""Hold: make sure a model is coming (the one wake, the touches that keep it wanted) and wait
until it is Warm with a usable endpoint, telling the caller how the download or load is going.
The first of the two steps every request walks (admission.py has the second: a slot)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from hearth_api.model_deployment import ConditionType, ModelDeployment, Phase
from hearth_router import progress
from hearth_router.annotations import Annotator
from hearth_router.errors import RouterError, unavailable
from hearth_router.metrics import RouterMetrics
from hearth_router.registry import Entry, Registry
from hearth_router.settings import RouterSettings
from hearth_router.unreachable import Unreachable


@dataclass
class Holding:
    settings: RouterSettings
    registry: Registry
    annotator: Annotator
    metrics: RouterMetrics
    unreachable: Unreachable

    def current(self, entry: Entry) -> Entry:
        current = self.registry.get(entry.key)
        if current is None:
            raise unavailable(f"{entry.md.spec.model} was deleted while the request waited", "model_deleted")
        return current

    def _download_deadline(self, md: ModelDeployment, deadline: float, patient: bool) -> float:
        """While the weights download, the hold timeout counts from the download's end for a
        stream (it shows the progress; the operator fails a download that stalls). A whole
        answer waits only as long as the hold allows: a download that will not end in time is
        a 503 now, saying so, with Retry-After from the download's ETA — not a bare 504 later."""
        hold = self.settings.hold_timeout(md.warmup_estimate)
        now = time.monotonic()
        if patient:
            return max(deadline, now + hold)
        got = md.status.download
        eta = got.eta_seconds if got is not None else None
        if (eta is not None and now + eta + md.warmup_estimate > deadline) or now > deadline:
            update = progress.downloading(md)
            after = (eta if eta is not None else hold) + md.warmup_estimate
            raise RouterError(
                503,
                f"{update.message}; it will not be ready within this request's wait "
                f"({deadline - now:.0f} s left): try again in {progress.duration_text(after)[1:]}, "
                "or stream the request to watch the download",
                "service_unavailable_error",
                "model_downloading",
                retry_after=after,
            )
        return deadline

    async def hold(
        self, entry: Entry, patient: bool = False
    ) -> AsyncIterator[progress.Downloading | progress.Loading]:
        """Yield a Downloading or Loading update about once a second and on every status change
        until the model is Warm; raise RouterError when it fails, vanishes or takes past the
        hold timeout (see _download_deadline for a first download)."""
        key, model = entry.key, entry.md.spec.model
        began = time.monotonic()
        deadline = began + self.settings.hold_timeout(entry.md.warmup_estimate)
        previous: progress.Loading | None = None  # the countdown as last computed
        last: tuple[str, float] | None = None  # the stage last yielded, and when
        while True:
            current = self.current(entry)
            md = current.md
            if md.status.phase is Phase.DOWNLOADING:
                deadline = self._download_deadline(md, deadline, patient)
            self.annotator.observe(key, md.status.phase)
            if md.status.phase is Phase.WARM and self.unreachable.usable(md):
                if last is not None:
                    self.metrics.cold_wait.labels(model=model).observe(time.monotonic() - began)
                return
            if md.status.phase is Phase.FAILED:
                verb = "download" if md.status.reason(ConditionType.DEGRADED) == "DownloadFailed" else "load"
                raise unavailable(f"{model} failed to {verb}: {md.status.message}", "model_failed")
            if md.never_fits:
                raise unavailable(f"{model} cannot be placed: {md.status.message}", "model_unschedulable")
            if time.monotonic() > deadline:
                raise RouterError(
                    504,
                    f"{model} did not finish loading within "
                    f"{deadline - began:.0f} s ({md.status.message or md.status.phase})",
                    code="load_timeout",
                )
            await self.annotator.ensure_awake(key, md.status.phase)
            await self.annotator.touch(key, md.spec.scaling.idle_timeout_seconds)
            update: progress.Downloading | progress.Loading
            if progress.first_download(md):
                update = progress.downloading(md, current.download_age)
            else:
                update = previous = progress.loading(md, datetime.now(UTC), previous)
            now = time.monotonic()
            # Once a second; at once only when the stage changes (a new figure alone waits its turn).
            if last is None or last[0] != update.stage or now - last[1] >= self.settings.loading_interval:
                last = (update.stage, now)
                yield update
            await self.registry.wait_change(max(0.05, last[1] + self.settings.loading_interval - now), key)

"""A minimal kopf operator for the API-server acceptance test (run by KopfRunner)."""

from __future__ import annotations

from typing import Any

import kopf


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.standalone = True
    settings.scanning.disabled = True
    settings.posting.enabled = False


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.create("hearth.dev", "v1alpha1", "modeldeployments")
def seen(patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Cold"
    patch.status["message"] = "seen by kopf"

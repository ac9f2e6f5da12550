"""The security every pod the operator makes runs with (engines and fetch Jobs alike): a fixed
non-root user, the runtime's default seccomp profile, no privilege escalation, no capabilities,
no API token, no Service environment variables. Pure."""

from __future__ import annotations

from typing import Any

RUN_AS = 1000  # the UID Hearth's image is built with (deploy/Dockerfile)


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(read_only_root: bool = False) -> dict[str, Any]:
    context: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    if read_only_root:
        context["readOnlyRootFilesystem"] = True
    return context


def locked_down(pod_spec: dict[str, Any]) -> dict[str, Any]:
    """A pod spec with the pod-level settings above."""
    return {
        **pod_spec,
        "securityContext": pod_security_context(),
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }

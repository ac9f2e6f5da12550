"""The `podman run` the simulated kubelet makes of a pod's container: what a kubelet honours of
its spec (pure; the containers themselves run in tests/cluster/test_install.py)."""

from __future__ import annotations

import pytest

from hearth_sim import podman
from hearth_sim.pod_files import field_value


def chart_pod() -> tuple[dict[str, object], dict[str, object]]:
    """The chart's router pod, as far as security goes."""
    pod_spec = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}
    }
    container = {
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
    }
    return pod_spec, container


def argv_of(sec: podman.Security, **given: object) -> list[str]:
    args: dict[str, object] = {
        "podman": ["podman", "--runtime", "runc"],
        "name": "hearth-sim-hearth-router-x",
        "image": "ghcr.io/hearth-dev/hearth:0.1.0",
        "argv": ["hearth-router"],
        "entrypoint": True,
        "env": {"HEARTH_ROUTER_PORT": "8012"},
        "mounts": [
            podman.Mount("/host/tmp", "/tmp"),
            podman.Mount("/host/keys", "/etc/hearth/api-keys", True),
        ],
        "sec": sec,
        "labels": {podman.LABEL: "42"},
        **given,
    }
    return podman.run_argv(**args)  # type: ignore[arg-type]


def test_the_charts_security_context_becomes_podmans_flags() -> None:
    sec = podman.security(*chart_pod(), image_user="1000:1000")
    argv = " ".join(argv_of(sec))
    assert "--user 1000:1000" in argv and "--group-add 1000" in argv
    # A read-only root with nothing mounted but what the pod asks for (podman's tmpfs is off).
    assert "--read-only --read-only-tmpfs=false" in argv
    assert "--security-opt no-new-privileges" in argv and "--cap-drop ALL" in argv
    assert "--volume /host/tmp:/tmp:rw" in argv and "--volume /host/keys:/etc/hearth/api-keys:ro" in argv
    assert "--env HEARTH_ROUTER_PORT=8012" in argv and f"--label {podman.LABEL}=42" in argv
    assert argv.endswith("--entrypoint hearth-router ghcr.io/hearth-dev/hearth:0.1.0")


def test_command_replaces_the_entrypoint_and_args_alone_the_cmd() -> None:
    sec = podman.Security()
    with_command = argv_of(sec, argv=["hearth-operator", "run"], entrypoint=True)
    assert with_command[-4:] == ["--entrypoint", "hearth-operator", "ghcr.io/hearth-dev/hearth:0.1.0", "run"]
    args_only = argv_of(sec, argv=["--port", "9"], entrypoint=False)
    assert args_only[-3:] == ["ghcr.io/hearth-dev/hearth:0.1.0", "--port", "9"]
    assert "--entrypoint" not in args_only and "--user" not in args_only  # the image's own user


def test_a_full_volume_is_the_largest_file_the_container_may_write() -> None:
    argv = " ".join(argv_of(podman.Security(), file_size=50 << 20))
    assert f"--ulimit fsize={50 << 20}:{50 << 20}" in argv


def test_run_as_non_root_is_checked_as_a_kubelet_checks_it() -> None:
    pod_spec, container = chart_pod()
    root = {"securityContext": {**pod_spec["securityContext"], "runAsUser": 0}}  # type: ignore[dict-item]
    with pytest.raises(podman.CannotCreate, match="runAsNonRoot and image will run as root"):
        podman.security(root, container)
    unset: dict[str, object] = {"securityContext": {"runAsNonRoot": True}}
    with pytest.raises(podman.CannotCreate):
        podman.security(unset, {}, image_user="")  # an image without USER runs as root
    assert podman.security(unset, {}, image_user="1000:1000").user is None  # the image's 1000


def test_the_container_overrides_the_pods_user_and_escalation_is_only_stopped_when_asked() -> None:
    pod_spec = {"securityContext": {"runAsUser": 1000}}
    sec = podman.security(pod_spec, {"securityContext": {"runAsUser": 2000}})
    assert sec.user == 2000 and not sec.no_new_privileges and not sec.read_only_root


def test_field_refs_are_the_pods_own_facts() -> None:
    pod = {"metadata": {"name": "r-1", "namespace": "hearth", "uid": "u"}, "spec": {"nodeName": "cpu-0"}}
    assert field_value(pod, "127.10.0.3", "status.podIP") == "127.10.0.3"
    assert field_value(pod, "127.10.0.3", "metadata.namespace") == "hearth"
    assert field_value(pod, "127.10.0.3", "spec.serviceAccountName") == "default"
    assert field_value(pod, "127.10.0.3", "metadata.labels['x']") is None

"""The Deployment and Service built for each engine."""

from __future__ import annotations

from typing import Any

from hearth_api.model_deployment import ModelDeployment
from hearth_operator import children


def md(**spec: Any) -> ModelDeployment:
    base = {"model": "qwen", "engine": "vllm", "gpu": {"class": "rtx3090", "vramGiB": 12}}
    return ModelDeployment.model_validate(
        {"metadata": {"name": "qwen", "namespace": "ai", "uid": "u"}, "spec": {**base, **spec}}
    )


def container(d: dict[str, Any]) -> dict[str, Any]:
    return d["spec"]["template"]["spec"]["containers"][0]


def test_vllm_gets_model_share_gpu_limit_probe_and_pin() -> None:
    d = children.deployment(
        md(modelSource={"pvc": "models", "path": "qwen-awq"}, aliases=["chat"]), "gpu-3090", 24, 1
    )
    c = container(d)
    assert c["image"].startswith("vllm/vllm-openai")
    assert c["args"][:6] == ["--model", "/models/qwen-awq", "--served-model-name", "qwen", "chat", "--port"]
    assert (
        "--gpu-memory-utilization" in c["args"]
        and c["args"][c["args"].index("--gpu-memory-utilization") + 1] == "0.50"
    )
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": 8000}
    pod = d["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "gpu-3090"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}} in pod[
        "volumes"
    ]
    assert d["spec"]["strategy"] == {"type": "Recreate"}
    assert d["spec"]["selector"]["matchLabels"] == {"hearth.dev/model-deployment": "qwen"}


def test_llamacpp_offloads_all_layers() -> None:
    c = container(
        children.deployment(md(engine="llamacpp", modelSource={"pvc": "m", "path": "l.gguf"}), None, None, 0)
    )
    assert c["args"][:2] == ["-m", "/models/l.gguf"] and "-ngl" in c["args"] and "99" in c["args"]
    assert "--metrics" in c["args"]


def test_ollama_and_sim_are_configured_by_env_and_command() -> None:
    ollama = container(children.deployment(md(engine="ollama", port=11434), None, None, 0))
    env = {e["name"]: e.get("value") for e in ollama["env"]}
    assert env["OLLAMA_HOST"] == "0.0.0.0:11434" and ollama["readinessProbe"]["httpGet"]["path"] == "/"
    sim = container(
        children.deployment(
            md(engine="sim", env=[{"name": "HEARTH_SIM_LOAD_SECONDS", "value": "3"}]), None, None, 1
        )
    )
    assert sim["command"] == ["hearth-sim-engine"] and sim["args"] == ["--model", "qwen", "--port", "8000"]
    assert {"name": "HEARTH_SIM_LOAD_SECONDS", "value": "3"} in sim["env"]


def test_user_args_replace_the_defaults() -> None:
    c = container(children.deployment(md(args=["--custom"]), None, None, 1))
    assert c["args"] == ["--custom"]


def test_the_service_selects_the_pods() -> None:
    s = children.service(md())
    assert s["spec"]["selector"] == {"hearth.dev/model-deployment": "qwen"}
    assert s["spec"]["ports"][0]["targetPort"] == "http"


def test_fields_the_operator_stops_setting_are_nulled_in_the_patch_and_left_out_on_create() -> None:
    unpinned = children.deployment(md(engine="sim"), None, None, 0)
    pod = unpinned["spec"]["template"]["spec"]
    assert "nodeSelector" in pod and pod["nodeSelector"] is None  # a merge patch removes the pin
    assert "nodeSelector" not in children.without_nulls(unpinned)["spec"]["template"]["spec"]
    vllm = container(children.deployment(md(), "gpu-3090", 24, 1))
    assert vllm["command"] is None  # the image's entrypoint, also after a switch from sim


def test_differs_ignores_server_defaults_and_sees_what_must_go() -> None:
    wanted = {"spec": {"replicas": 1, "nodeSelector": None, "containers": [{"name": "engine", "env": []}]}}
    actual = {
        "spec": {
            "replicas": 1,
            "dnsPolicy": "ClusterFirst",
            "containers": [{"name": "engine", "env": [], "imagePullPolicy": "IfNotPresent"}],
        }
    }
    assert not children.differs(wanted, actual)
    assert children.differs(wanted, {"spec": {**actual["spec"], "nodeSelector": {"h": "x"}}})
    assert children.differs(wanted, {"spec": {**actual["spec"], "replicas": 0}})
    assert children.differs(wanted, {"spec": {**actual["spec"], "containers": []}})

"""Settings from the environment: typed, comma lists, keys from a file, typos refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from hearth_api.environment import in_cluster_server, invalid_message, load_settings, unknown_variables
from hearth_operator import cli as operator_cli
from hearth_operator.settings import OperatorSettings
from hearth_router import cli as router_cli
from hearth_router.keys import KeyRing
from hearth_router.settings import RouterSettings


def test_router_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("from-file\n\n")
    monkeypatch.setenv("HEARTH_ROUTER_API_KEYS", "a, b,,")
    monkeypatch.setenv("HEARTH_ROUTER_API_KEYS_FILE", str(keys))
    monkeypatch.setenv("HEARTH_ROUTER_CORS_ORIGINS", "http://webui.lan, http://other.lan")
    monkeypatch.setenv("HEARTH_ROUTER_MAX_WAITERS", "7")
    monkeypatch.setenv("HEARTH_LOG_LEVEL", "DEBUG")
    settings = load_settings(RouterSettings, "hearth-router", {}, port=9000, namespace=None)
    assert settings.api_keys == frozenset({"a", "b"})
    assert KeyRing(settings.api_keys, settings.api_keys_file).keys() == frozenset({"a", "b", "from-file"})
    assert settings.cors_origins == ["http://webui.lan", "http://other.lan"]
    assert (settings.max_waiters, settings.port, settings.log_level) == (7, 9000, "DEBUG")


def test_one_spelling_of_the_namespace_in_both_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_ROUTER_NAMESPACE", "ai")
    monkeypatch.setenv("HEARTH_OPERATOR_NAMESPACE", "ai")
    assert RouterSettings().namespace == OperatorSettings().namespace == "ai"


def test_a_misspelt_variable_stops_the_program_naming_it() -> None:
    environ = {
        "HEARTH_ROUTER_PROT": "1",  # a typo of this part's setting
        "HEARTH_ROUTR_PORT": "1",  # a typo of the prefix
        "HEARTH_OPERATOR_METRICS_PORT": "9",  # another part's: not this program's business
        "HEARTH_SIM_LOAD_SECONDS": "1",
        "HEARTH_LOG_LEVEL": "INFO",
    }
    assert unknown_variables(environ, "HEARTH_ROUTER_", RouterSettings.model_fields) == [
        "HEARTH_ROUTER_PROT",
        "HEARTH_ROUTR_PORT",
    ]
    with pytest.raises(ValueError, match="HEARTH_ROUTER_PROT \\(did you mean HEARTH_ROUTER_PORT\\?\\)"):
        load_settings(RouterSettings, "hearth-router", environ)


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_OPERATOR_METRICS_PORT", "eighty")
    with pytest.raises(ValidationError) as bad:
        OperatorSettings()
    assert invalid_message("hearth-operator", "HEARTH_OPERATOR_", bad.value).startswith(
        "hearth-operator: invalid setting HEARTH_OPERATOR_METRICS_PORT: Input should be a valid integer"
    )


def test_the_programs_refuse_to_start_on_a_typo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HEARTH_ROUTER_HOLD_TIMEOUT", "30")
    assert router_cli.main([]) == 2
    assert "unknown setting HEARTH_ROUTER_HOLD_TIMEOUT (did you mean" in capsys.readouterr().err
    monkeypatch.setenv("HEARTH_OPERATOR_NAMESPACES", "ai")
    assert operator_cli.main(["run"]) == 2
    assert "HEARTH_OPERATOR_NAMESPACES (did you mean HEARTH_OPERATOR_NAMESPACE?)" in capsys.readouterr().err


def test_a_pod_finds_the_api_server_from_the_kubelets_variables() -> None:
    """kopf's own service-account login names https://kubernetes.default.svc, which needs the
    cluster's DNS; the variables a kubelet sets in every container do not."""
    env = {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_server(env) == "https://10.43.0.1:443"
    assert in_cluster_server({**env, "KUBERNETES_SERVICE_HOST": "fd00::1"}) == "https://[fd00::1]:443"
    assert in_cluster_server({"KUBERNETES_SERVICE_HOST": "10.43.0.1"}) is None
    assert in_cluster_server({}) is None

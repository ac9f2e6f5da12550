"""The Helm chart, linted and rendered by Helm itself (helm-python-sdk, real Helm v4), every
object checked against Kubernetes' own schemas, and deploy/hearth.yaml kept in step."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import yaml
from helm_python.chart import lint
from helm_python.errors import HelmError

from hearth_api.model_deployment import ModelDeployment
from hearth_operator.metrics import OperatorMetrics
from hearth_operator.settings import OperatorSettings
from hearth_router.metrics import RouterMetrics
from hearth_sim import chart

KUBERNETES = "1.32.0"
EXAMPLE = yaml.safe_load((chart.CHART.parents[1] / "deploy" / "examples" / "sim-small.yaml").read_text())

# Every documented option, each rendered and checked on its own.
OPTIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "one namespace": {"watchNamespace": "ai"},
    "api keys made by the chart": {"apiKeys": {"enabled": True, "keys": ["sekrit-key-1"]}},
    "api keys from a Secret": {"apiKeys": {"enabled": True, "existingSecret": "my-keys"}},
    "ingress-nginx with TLS": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": [{"host": "ai.lan", "paths": [{"path": "/hearth", "pathType": "Prefix"}]}],
            "tls": [{"secretName": "ai-tls", "hosts": ["ai.lan"]}],
        }
    },
    "traefik": {"ingress": {"enabled": True, "className": "traefik", "annotations": {}}},
    "service monitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    "grafana dashboard": {"grafanaDashboard": {"enabled": True, "namespace": "monitoring"}},
    "models": {"models": [{"name": "small", "spec": EXAMPLE["spec"]}]},
    "placement and images": {
        "image": {"tag": "dev", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "regcred"}],
        "router": {
            "replicas": 2,
            "settings": {"maxWaiters": 64, "hideStatusSummary": True},
            "nodeSelector": {"kubernetes.io/arch": "amd64"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "homelab-high",
        },
        "operator": {"affinity": {}, "priorityClassName": "homelab-high"},
    },
    "an external store": {"router": {"replicas": 3, "store": {"url": "redis://nas.lan:6379/2"}}},
    "a store URL from a Secret": {"router": {"store": {"urlSecret": "hearth-store-url"}}},
}


def kinds(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        out.setdefault(obj["kind"], []).append(obj)
    return out


@pytest.mark.parametrize("values", OPTIONS.values(), ids=OPTIONS.keys())
def test_every_option_lints_renders_and_passes_kubernetes_schemas(values: dict[str, Any]) -> None:
    report = lint(str(chart.CHART), values, strict=True, kube_version=f"v{KUBERNETES}")
    assert not report["errors"], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report
    objects = chart.objects(chart.render(values))
    for obj in objects:
        if obj["kind"] == "ModelDeployment":
            ModelDeployment.model_validate(obj)  # our own types check what the CRD checks
        elif obj["kind"] != "ServiceMonitor":  # not a built-in kind
            kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_both_parts_run_as_non_root_with_a_read_only_root_and_no_privileges() -> None:
    for deployment in kinds(chart.objects(chart.render()))["Deployment"]:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["image"] == "ghcr.io/hearth-dev/hearth:0.1.0"  # appVersion by default
            assert container.get("livenessProbe") and container["resources"]["limits"]["memory"]


def rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


OPERATOR_CALLS = {
    ("hearth.dev", "modeldeployments", "get"),
    ("hearth.dev", "modeldeployments", "list"),
    ("hearth.dev", "modeldeployments", "watch"),
    ("hearth.dev", "modeldeployments/status", "get"),
    ("hearth.dev", "modeldeployments/status", "patch"),
    ("apps", "deployments", "get"),
    ("apps", "deployments", "create"),
    ("apps", "deployments", "patch"),
    ("", "services", "get"),
    ("", "services", "create"),
    ("", "services", "patch"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("batch", "jobs", "list"),
    ("batch", "jobs", "watch"),
    ("batch", "jobs", "create"),
    ("batch", "jobs", "delete"),
    ("", "events", "create"),
}
NODE_READS = {("", "nodes", "list"), ("", "nodes", "watch")}
ROUTER_CALLS = {("hearth.dev", "modeldeployments", v) for v in ("get", "list", "watch", "patch")}


def test_rbac_grants_exactly_what_each_part_calls_and_no_wildcard() -> None:
    by_kind = kinds(chart.objects(chart.render()))
    roles = {r["metadata"]["name"]: r for r in by_kind["ClusterRole"]}
    assert rules(roles["hearth-operator"]) == OPERATOR_CALLS | NODE_READS
    assert rules(roles["hearth-router"]) == ROUTER_CALLS | NODE_READS
    assert "Role" not in by_kind
    for role in roles.values():
        assert not any("*" in part for rule in rules(role) for part in rule)
    bound = {b["roleRef"]["name"]: b["subjects"][0] for b in by_kind["ClusterRoleBinding"]}
    assert bound["hearth-operator"] == {
        "kind": "ServiceAccount",
        "name": "hearth-operator",
        "namespace": "hearth",
    }


def test_one_watched_namespace_makes_the_roles_namespaced() -> None:
    by_kind = kinds(chart.objects(chart.render({"watchNamespace": "ai"})))
    cluster = {r["metadata"]["name"]: r for r in by_kind["ClusterRole"]}
    assert set(cluster) == {"hearth-operator", "hearth-router"}
    assert rules(cluster["hearth-operator"]) == rules(cluster["hearth-router"]) == NODE_READS
    roles = {r["metadata"]["name"]: r for r in by_kind["Role"]}
    assert all(r["metadata"]["namespace"] == "ai" for r in roles.values())
    assert rules(roles["hearth-operator"]) == OPERATOR_CALLS and rules(roles["hearth-router"]) == ROUTER_CALLS
    for deployment in by_kind["Deployment"]:
        env = {
            e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert "ai" in (env.get("HEARTH_OPERATOR_NAMESPACE"), env.get("HEARTH_ROUTER_NAMESPACE"))


def router_env(values: dict[str, Any], part: str = "hearth-router") -> dict[str, str]:
    by_kind = kinds(chart.objects(chart.render(values)))
    router = next(d for d in by_kind["Deployment"] if d["metadata"]["name"] == part)
    return {e["name"]: e.get("value", "") for e in router["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_router_settings_become_the_variables_the_router_reads() -> None:
    env = router_env({"router": {"settings": {"maxWaiters": 64, "hideStatusSummary": True}}})
    assert env["HEARTH_ROUTER_MAX_WAITERS"] == "64" and env["HEARTH_ROUTER_HIDE_STATUS_SUMMARY"] == "true"
    keyed = router_env({"apiKeys": {"enabled": True, "keys": ["sekrit-key-1"]}})
    assert keyed["HEARTH_ROUTER_API_KEYS_FILE"] == "/etc/hearth/api-keys/keys"


def test_operator_settings_become_the_variables_the_operator_reads() -> None:
    env = router_env({"operator": {"settings": {"loadTimeoutSeconds": 1800}}}, part="hearth-operator")
    assert env["HEARTH_OPERATOR_LOAD_TIMEOUT_SECONDS"] == "1800"
    # and the operator takes it: a name it does not know would stop it, naming the variable
    assert OperatorSettings.model_validate({"load_timeout_seconds": "1800"}).load_timeout_seconds == 1800


def test_the_ingress_keeps_server_sent_events_unbuffered() -> None:
    values = {"ingress": {"enabled": True, "className": "nginx"}}
    ingress = kinds(chart.objects(chart.render(values)))["Ingress"][0]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "hearth-router", "port": {"name": "http"}}


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"imag": {"tag": "x"}}, "imag"),
        ({"router": {"replicas": "two"}}, "replicas"),
        ({"logLevel": "LOUD"}, "logLevel"),
        ({"router": {"settings": {"max_waiters": 1}}}, "max_waiters"),
        ({"ingress": {"hosts": [{"host": "a", "paths": [{"path": "nope", "pathType": "Prefix"}]}]}}, "path"),
    ],
)
def test_bad_values_are_refused_naming_the_key(values: dict[str, Any], named: str) -> None:
    with pytest.raises(HelmError, match=named):
        chart.render(values)


def test_two_routers_share_the_valkey_the_chart_runs_and_only_they_reach_it() -> None:
    assert not any(k.startswith("HEARTH_ROUTER_STORE") for k in router_env({}))  # one: in memory
    by_kind = kinds(chart.objects(chart.render({"router": {"replicas": 2}})))
    store = next(d for d in by_kind["Deployment"] if d["metadata"]["name"] == "hearth-store")
    pod = store["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and not pod["automountServiceAccountToken"]
    (valkey,) = pod["containers"]
    assert valkey["image"].startswith("docker.io/valkey/valkey:")
    assert valkey["securityContext"]["readOnlyRootFilesystem"] and "--save" in valkey["args"]
    (service,) = [s for s in by_kind["Service"] if s["metadata"]["name"] == "hearth-store"]
    env = router_env({"router": {"replicas": 2}})
    assert (
        env["HEARTH_ROUTER_STORE_URL"]
        == f"redis://hearth-store.{service['metadata']['namespace']}.svc:6379/0"
    )
    assert env["HEARTH_ROUTER_STORE_LEASE_SECONDS"] == "5"
    (policy,) = by_kind["NetworkPolicy"]
    (allowed,) = policy["spec"]["ingress"][0]["from"]
    assert allowed["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "router"
    # A store of one's own: no Valkey from the chart; the URL from a Secret when it holds a password.
    external = kinds(chart.objects(chart.render({"router": {"replicas": 2, "store": {"urlSecret": "s"}}})))
    assert "NetworkPolicy" not in external
    router = next(d for d in external["Deployment"] if d["metadata"]["name"] == "hearth-router")
    (url,) = [
        e for e in router["spec"]["template"]["spec"]["containers"][0]["env"] if e["name"].endswith("URL")
    ]
    assert url["valueFrom"]["secretKeyRef"] == {"name": "s", "key": "url"}


def test_two_routers_without_a_store_are_refused_naming_the_values() -> None:
    with pytest.raises(HelmError, match=r"router\.store\.url, router\.store\.urlSecret"):
        chart.render({"router": {"replicas": 2, "store": {"valkey": {"enabled": False}}}})
    with pytest.raises(HelmError, match="url"):
        chart.render({"router": {"store": {"url": "http://not-a-store"}}})


def test_api_keys_enabled_without_keys_is_refused() -> None:
    with pytest.raises(HelmError, match=r"apiKeys\.keys or apiKeys\.existingSecret"):
        chart.render({"apiKeys": {"enabled": True}})


def test_deploy_manifests_are_the_chart_rendered() -> None:
    assert chart.MANIFESTS.read_text() == chart.manifests(), (
        "deploy/hearth.yaml drifted: run `make manifests`"
    )


def test_plain_manifests_create_what_a_deployment_needs_before_it() -> None:
    """`kubectl apply` goes in file order: a Deployment applied before its ServiceAccount (or its
    claim) has its first pods refused until the controller retries."""
    docs = [d for d in yaml.safe_load_all(chart.MANIFESTS.read_text()) if d]
    where = {(d["kind"], d["metadata"]["name"]): i for i, d in enumerate(docs)}
    deployments = [(i, d) for i, d in enumerate(docs) if d["kind"] == "Deployment"]
    assert deployments
    for i, deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert where[("ServiceAccount", pod["serviceAccountName"])] < i
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert where[("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])] < i
    assert docs[0]["kind"] == "Namespace"


def test_the_grafana_dashboard_charts_what_hearth_exports() -> None:
    values = {"grafanaDashboard": {"enabled": True}}
    config = kinds(chart.objects(chart.render(values)))["ConfigMap"][0]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config["data"]["hearth.json"])
    queries = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    metrics = {
        "hearth_warmup_seconds_bucket",
        "hearth_models",
        "hearth_evictions_total",
        "hearth_router_waiters",
        "hearth_router_time_to_first_token_seconds_bucket",
        "hearth_router_requests_total",
    }
    assert all(m in queries for m in metrics)
    # Each is a metric the operator or the router really exports (families drop _total/_bucket).
    families = {f.name for m in (OperatorMetrics(), RouterMetrics()) for f in m.registry.collect()}
    assert {m.removesuffix("_bucket").removesuffix("_total") for m in metrics} <= families


def operator_env(values: dict[str, Any]) -> dict[str, str]:
    return router_env(values, part="hearth-operator")


def test_the_weights_cache_is_a_kept_claim_or_a_host_folder_the_operator_is_told_of() -> None:
    by_kind = kinds(chart.objects(chart.render()))
    (claim,) = by_kind["PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == "hearth-weights"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"  # uninstall keeps GiBs
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    env = operator_env({})
    assert env["HEARTH_OPERATOR_CACHE_CLAIM"] == "hearth-weights"
    assert env["HEARTH_OPERATOR_FETCH_IMAGE"].startswith("ghcr.io/hearth-dev/hearth:")

    host = chart.render(
        {"weightsCache": {"hostPath": "/var/lib/hearth/weights", "hfEndpoint": "https://hf-mirror.com"}}
    )
    assert "PersistentVolumeClaim" not in kinds(chart.objects(host))
    env = operator_env(
        {"weightsCache": {"hostPath": "/var/lib/hearth/weights", "hfEndpoint": "https://hf-mirror.com"}}
    )
    assert env["HEARTH_OPERATOR_CACHE_HOST_PATH"] == "/var/lib/hearth/weights"
    assert env["HEARTH_OPERATOR_HF_ENDPOINT"] == "https://hf-mirror.com"
    assert "HEARTH_OPERATOR_CACHE_CLAIM" not in env

    off = operator_env({"weightsCache": {"enabled": False}})
    assert not any(k.startswith("HEARTH_OPERATOR_CACHE") for k in off)  # engines fetch for themselves
    assert (
        operator_env({"weightsCache": {"existingClaim": "nas-models"}})["HEARTH_OPERATOR_CACHE_CLAIM"]
        == "nas-models"
    )


def test_a_router_upgrade_drains_and_two_routers_keep_one_through_a_node_drain() -> None:
    one = kinds(chart.objects(chart.render({})))
    router = next(d for d in one["Deployment"] if d["metadata"]["name"] == "hearth-router")
    pod = router["spec"]["template"]["spec"]
    assert router["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert pod["terminationGracePeriodSeconds"] == 600  # the drain's 570 s and 30 s
    assert pod["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert router_env({})["HEARTH_ROUTER_DRAIN_SECONDS"] == "570"
    assert "PodDisruptionBudget" not in one
    two = kinds(chart.objects(chart.render({"router": {"replicas": 2, "drainSeconds": 120}})))
    (pdb,) = two["PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "router"
    router = next(d for d in two["Deployment"] if d["metadata"]["name"] == "hearth-router")
    assert router["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 150

"""Which Ingress rule a request goes to, as ingress-nginx decides it."""

from __future__ import annotations

from typing import Any

from hearth_sim.ingress import match


def ingress(name: str, host: str | None, *paths: tuple[str, str]) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "http": {"paths": [{"path": p, "pathType": k, "backend": {"n": name}} for p, k in paths]}
    }
    if host is not None:
        rule["host"] = host
    return {"metadata": {"name": name, "namespace": "default"}, "spec": {"rules": [rule]}}


INGRESSES = [
    ingress("root", "hearth.lan", ("/", "Prefix")),
    ingress("api", "hearth.lan", ("/v1", "Prefix"), ("/v1/models", "Exact")),
    ingress("anyhost", None, ("/metrics", "Prefix")),
]


def chosen(host: str, path: str) -> tuple[str, str] | None:
    found = match(INGRESSES, host, path)
    return (found[0]["metadata"]["name"], found[1]["path"]) if found else None


def test_exact_then_the_longest_prefix_on_the_right_host() -> None:
    assert chosen("hearth.lan", "/v1/models") == ("api", "/v1/models")
    assert chosen("hearth.lan", "/v1/chat/completions") == ("api", "/v1")
    assert chosen("hearth.lan", "/v10") == ("root", "/")  # a prefix matches whole path segments
    assert chosen("hearth.lan", "/") == ("root", "/")
    assert chosen("other.lan", "/v1/models") is None
    assert chosen("other.lan", "/metrics") == ("anyhost", "/metrics")

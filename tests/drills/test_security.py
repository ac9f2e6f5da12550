"""Drill 8: keys and privileges. A router that requires keys (from its environment and from a
mounted Secret file, rotated while it runs) lets no request through without one on `/v1/*` and
`/api/*`, keeps the probes and `/metrics` open as documented, and never writes a key — good or
bad — to its log. Every container Hearth renders runs as non-root without privilege escalation."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from hearth_api.model_deployment import ModelDeployment
from hearth_operator import children
from hearth_sim.homelab import HomelabThread

from ..cluster.conftest import eventually
from ..cluster.operator_helpers import OperatorProcess
from ..cluster.router_helpers import RouterProcess, chat
from .record import Drill

ENV_KEY, FILE_KEY, ROTATED_KEY = "sk-env-7f3a9c1d", "sk-file-51be02aa", "sk-rotated-c0ffee42"
WRONG = ["sk-wrong-0001", "sk-env-7f3a9c1", ENV_KEY + "x"]
tally = Drill(
    "08-keys-and-privileges",
    "API keys and privileges",
    "requests without, with wrong and with right keys on every route; the keys file rotated "
    "while serving; every rendered container inspected",
    checked="401 without a right key on /v1 and /api; rotation live ≤ 1 s; no key in any log; "
    "non-root, no privilege escalation, no capabilities",
)
GUARDED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/models", None),
    ("POST", "/v1/chat/completions", chat("nope", stream=False)),
    ("POST", "/v1/completions", {"model": "nope", "prompt": "hi"}),
    ("POST", "/v1/embeddings", {"model": "nope", "input": "hi"}),
    ("POST", "/v1/requests/chatcmpl-x/cancel", None),
    ("GET", "/api/models", None),
    ("GET", "/api/gpus", None),
    ("POST", "/api/models/nope/wake", None),
    ("POST", "/api/models/nope/sleep", None),
]
OPEN = ["/healthz", "/readyz", "/metrics", "/", "/static/app.js"]


def write_keys(folder: Path, keys: str, version: int) -> Path:
    """As the kubelet updates a Secret volume: a new folder, then `..data` swapped to it."""
    data = folder / f"..{version}"
    data.mkdir()
    (data / "keys").write_text(keys)
    (folder / "..tmp").symlink_to(data.name)
    os.replace(folder / "..tmp", folder / "..data")
    link = folder / "keys"
    if not link.is_symlink():
        link.symlink_to("..data/keys")
    return link


async def status_of(http: httpx.AsyncClient, method: str, path: str, body: Any, key: str | None) -> int:
    tally.times += 1
    headers = {} if key is None else {"Authorization": key if " " in key else f"Bearer {key}"}
    r = await http.request(method, path, json=body, headers=headers)
    if r.status_code >= 500:
        tally.server_errors += 1
    if r.status_code == 401:
        assert r.json()["error"]["code"] == "invalid_api_key"
    return r.status_code


async def test_keys_guard_every_route_rotate_live_and_never_reach_a_log(
    homelab: HomelabThread, operator: OperatorProcess, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    keys_file = write_keys(secret, f"{FILE_KEY}\n", 1)
    router = await asyncio.to_thread(
        lambda: RouterProcess(
            homelab, tmp_path, log_level="DEBUG", api_keys=ENV_KEY, api_keys_file=keys_file
        ).start()
    )
    try:
        async with httpx.AsyncClient(base_url=router.url, timeout=10) as http:
            for method, path, body in GUARDED:
                for key in [None, "Basic c2stZW52LTdmM2E5YzFkOg==", f"Token {ENV_KEY}", *WRONG]:
                    assert await status_of(http, method, path, body, key) == 401, (path, key)
                for key in (ENV_KEY, FILE_KEY):
                    assert await status_of(http, method, path, body, key) != 401, (path, key)
            for path in OPEN:
                assert await status_of(http, "GET", path, None, None) == 200, path

            write_keys(secret, f"{ROTATED_KEY}\n", 2)  # the Secret rotated, the router not restarted

            async def rotated() -> bool:
                return await status_of(http, "GET", "/v1/models", None, ROTATED_KEY) == 200

            await eventually(rotated, deadline=5, what="the rotated key to be accepted")
            assert await status_of(http, "GET", "/v1/models", None, FILE_KEY) == 401
            assert await status_of(http, "GET", "/v1/models", None, ENV_KEY) == 200
    finally:
        router.stop()
    logs = router.logs() + operator.logs()
    assert "API keys required" in logs  # the log is there to be searched
    for key in [ENV_KEY, FILE_KEY, ROTATED_KEY, *WRONG]:
        assert key not in logs, f"a key reached a log: {key}"
    tally.save()


ENGINES = {
    "vllm": {},
    "llamacpp": {"modelSource": {"pvc": "m", "path": "x.gguf"}},
    "ollama": {"modelSource": {"uri": "ollama://m:1b"}},
    "sim": {},
    "custom": {"image": "example.org/engine:1"},
}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_every_engine_container_runs_unprivileged(engine: str) -> None:
    spec = {"model": "m", "engine": engine, "gpu": {"vramGiB": 4}, **ENGINES[engine]}
    md = ModelDeployment.model_validate(
        {"metadata": {"name": "m", "namespace": "ai", "uid": "u"}, "spec": spec}
    )
    pod = children.deployment(md, "node", 24, 1)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False  # an engine never talks to the API server
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
        assert not security.get("privileged")

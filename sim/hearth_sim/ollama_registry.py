"""Ollama's store on disk and its pull from a registry, simulated as the real one does them.

- A name is `[registry/][namespace/]model[:tag]` (`qwen2.5:0.5b` is
  `registry.ollama.ai/library/qwen2.5:latest`'s sibling with tag `0.5b`).
- The store (`OLLAMA_MODELS`) holds `manifests/<registry>/<namespace>/<model>/<tag>` (the
  registry's manifest, JSON) and `blobs/sha256-<hex>` (each layer once, whatever names it).
- A pull reads the manifest from `<registry>/v2/<namespace>/<model>/manifests/<tag>`, then each
  layer from `…/blobs/<digest>` into `blobs/sha256-<hex>-partial`, resumed by `Range` after a
  killed pull, checked against its digest, then renamed into place; the manifest is written last.
  Progress is Ollama's NDJSON: `pulling <digest[7:19]>` with `digest`, `total`, `completed`.

The homelab's hub serves the registry (`HEARTH_SIM_OLLAMA_REGISTRY` points `registry.ollama.ai`
there); another registry host in a name is fetched over HTTPS, as Ollama does.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hearth_api.weights_cache import OLLAMA_MANIFEST_TYPE as MANIFEST_TYPE
from hearth_api.weights_cache import OLLAMA_REGISTRY as REGISTRY
from hearth_api.weights_cache import OllamaName as Name

__all__ = ["MANIFEST_TYPE", "REGISTRY", "Name"]

PROGRESS_EVERY = 0.1  # seconds between two progress lines of one layer
CHUNK = 1 << 20


class PullFailed(Exception):
    """What Ollama's pull answers as `{"error": …}`."""


@dataclass(frozen=True)
class Disk:
    root: Path

    def manifest_path(self, name: Name) -> Path:
        return self.root / "manifests" / name.host / name.namespace / name.model / name.tag

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / digest.replace(":", "-")

    def manifest(self, name: Name) -> dict[str, Any] | None:
        try:
            found = json.loads(self.manifest_path(name).read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def write(self, name: Name, manifest: dict[str, Any]) -> None:
        path = self.manifest_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.tmp")
        staged.write_text(json.dumps(manifest))
        staged.replace(path)

    def names(self) -> list[Name]:
        base = self.root / "manifests"
        if not base.is_dir():
            return []
        found = []
        for path in base.rglob("*"):
            parts = path.relative_to(base).parts
            if path.is_file() and not path.name.startswith(".") and len(parts) >= 4:
                found.append(Name(parts[0], parts[1], "/".join(parts[2:-1]), parts[-1]))
        return found


def size_of(manifest: dict[str, Any]) -> int:
    layers = [*manifest.get("layers", []), manifest.get("config") or {}]
    return sum(int(layer.get("size", 0)) for layer in layers)


def model_digest(manifest: dict[str, Any]) -> str:
    """The digest Ollama lists a model by: its manifest's."""
    return "sha256:" + hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def _base(name: Name, registry: str | None) -> str:
    if name.host == REGISTRY and registry:
        return registry.rstrip("/")
    return f"https://{name.host}"


async def pull(disk: Disk, name: Name, registry: str | None) -> AsyncIterator[dict[str, Any]]:
    """Ollama's pull, as its progress lines; an `error` line ends it."""
    yield {"status": "pulling manifest"}
    base = _base(name, registry)
    timeout = httpx.Timeout(30.0, read=120.0)
    async with httpx.AsyncClient(follow_redirects=True, timeout=timeout) as http:
        try:
            manifest = await _manifest(http, base, name)
            for layer in [*manifest["layers"], manifest["config"]]:
                async for line in _layer(http, disk, base, name, layer):
                    yield line
        except PullFailed as exc:
            yield {"error": str(exc)}
            return
        except httpx.HTTPError as exc:
            yield {"error": f"pull model manifest: {exc}"}
            return
    yield {"status": "verifying sha256 digest"}
    yield {"status": "writing manifest"}
    disk.write(name, manifest)
    yield {"status": "success"}


async def _manifest(http: httpx.AsyncClient, base: str, name: Name) -> dict[str, Any]:
    url = f"{base}/v2/{name.namespace}/{name.model}/manifests/{name.tag}"
    answer = await http.get(url, headers={"Accept": MANIFEST_TYPE})
    if answer.status_code == 404:
        raise PullFailed("pull model manifest: file does not exist")
    if answer.status_code in (401, 403):
        raise PullFailed(f"pull model manifest: {answer.status_code}: unauthorized")
    if answer.status_code >= 400:
        raise PullFailed(f"pull model manifest: {answer.status_code}: {answer.text[:200]}")
    manifest = answer.json()
    if not isinstance(manifest, dict) or "layers" not in manifest or "config" not in manifest:
        raise PullFailed("pull model manifest: invalid manifest")
    return manifest


async def _layer(
    http: httpx.AsyncClient, disk: Disk, base: str, name: Name, layer: dict[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    digest, size = str(layer["digest"]), int(layer["size"])

    def progress(done: int) -> dict[str, Any]:
        return {"status": f"pulling {digest[7:19]}", "digest": digest, "total": size, "completed": done}

    final = disk.blob_path(digest)
    if final.is_file() and final.stat().st_size == size:
        yield progress(size)  # kept once, whichever model brought it
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + "-partial")
    have = partial.stat().st_size if partial.is_file() else 0
    if have > size:
        partial.unlink()
        have = 0
    hasher = hashlib.sha256()
    if have:
        with partial.open("rb") as f:
            while block := f.read(CHUNK):
                hasher.update(block)
    yield progress(have)
    url = f"{base}/v2/{name.namespace}/{name.model}/blobs/{digest}"
    async with http.stream("GET", url, headers={"Range": f"bytes={have}-"} if have else {}) as answer:
        if answer.status_code == 200 and have:
            partial.unlink()  # the registry sends it whole: start over
            have, hasher = 0, hashlib.sha256()
        elif answer.status_code not in (200, 206, 416):
            raise PullFailed(f"download {digest}: {answer.status_code}")
        last = time.monotonic()
        try:
            with partial.open("ab") as out:
                async for block in answer.aiter_bytes(CHUNK):
                    out.write(block)
                    hasher.update(block)
                    have += len(block)
                    if time.monotonic() - last >= PROGRESS_EVERY:
                        out.flush()
                        last = time.monotonic()
                        yield progress(have)
        except OSError as exc:  # Go's words: "write …: no space left on device"
            raise PullFailed(f"write {partial.name}: {(exc.strerror or str(exc)).lower()}") from exc
    yield progress(have)
    got = "sha256:" + hasher.hexdigest()
    if got != digest:
        partial.unlink(missing_ok=True)
        raise PullFailed(f"digest mismatch, file must be downloaded again: want {digest}, got {got}")
    partial.replace(final)

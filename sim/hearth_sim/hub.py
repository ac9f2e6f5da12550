"""A stand-in for the internet a homelab downloads weights from: plain file hosting and the part
of Hugging Face's API a fetch uses, on loopback, at a throttled rate.

- `GET /files/<name>`: a file, with `Range` (206 + `Content-Range`), `Content-Length`, HEAD.
- `GET /api/models/<org>/<repo>/tree/<rev>[/<path>]`: the repository's files as the Hub lists
  them (`type`, `path`, `size`, `oid`, and `lfs: {oid: sha256, size, pointerSize}` for LFS files);
  `X-Error-Code: RepoNotFound` for an unknown (or, without its token, private) repository.
- `GET /<org>/<repo>/resolve/<rev>/<path>`: as the Hub does for LFS files, a 302 to the file on
  another path (its "CDN"), which serves it with `Range`.
- `GET /v2/<namespace>/<model>/manifests/<tag>` and `/v2/<namespace>/<model>/blobs/<digest>`:
  Ollama's registry (registry.ollama.ai), whose manifests list a model's layers by digest; a
  model nobody hosted is made up on the spot (`ollama_size` bytes of weights) unless its name
  starts with `missing` — then, as upstream, "manifest unknown".

Files are real ones on disk or synthetic (a seeded pattern of any size, generated as served, so a
test can host hundreds of MB without writing them). Bytes served are counted per file, so a test
can tell a resumed download from a restarted one; `rate` (bytes/s) throttles every response.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

BLOCK = 1 << 16
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass
class Hosted:
    """One file: on disk (`path`) or synthetic (`size` bytes of a seeded pattern)."""

    size: int
    path: Path | None = None
    seed: int = 0
    git: bool = False  # kept in git, not LFS (small files: config.json)
    rate: float | None = None  # bytes per second for this file; None: the hub's rate
    _pattern: bytes = b""
    _sha256: str = ""

    @classmethod
    def on_disk(cls, path: Path) -> Hosted:
        return cls(size=path.stat().st_size, path=path)

    @classmethod
    def synthetic(cls, size: int, seed: int = 0, git: bool = False, rate: float | None = None) -> Hosted:
        return cls(size=size, seed=seed, git=git, rate=rate)

    def chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end) in blocks."""
        return self._from_disk(start, end) if self.path else self._generated(start, end)

    async def _from_disk(self, start: int, end: int) -> AsyncIterator[bytes]:
        assert self.path is not None
        with self.path.open("rb") as f:
            f.seek(start)
            while start < end:
                block = f.read(min(BLOCK, end - start))
                if not block:
                    return
                start += len(block)
                yield block

    async def _generated(self, start: int, end: int) -> AsyncIterator[bytes]:
        pattern = self.pattern()
        while start < end:
            offset = start % len(pattern)
            block = pattern[offset : offset + min(BLOCK, end - start)]
            start += len(block)
            yield block

    def pattern(self) -> bytes:
        if not self._pattern:
            self._pattern = random.Random(self.seed).randbytes(BLOCK * 16 + 7)  # odd length: no alignment
        return self._pattern

    def sha256(self) -> str:
        if not self._sha256:
            digest = hashlib.sha256()
            if self.path:
                with self.path.open("rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
            else:
                pattern, left = self.pattern(), self.size
                while left:
                    digest.update(pattern[: min(left, len(pattern))])
                    left -= min(left, len(pattern))
            self._sha256 = digest.hexdigest()
        return self._sha256

    def git_blob_sha1(self) -> str:
        digest = hashlib.sha1(f"blob {self.size}\0".encode())
        pattern, left = self.pattern(), self.size
        if self.path:
            digest.update(self.path.read_bytes())
        else:
            while left:
                digest.update(pattern[: min(left, len(pattern))])
                left -= min(left, len(pattern))
        return digest.hexdigest()


@dataclass
class OllamaModel:
    """A model in the Ollama registry: its weights, a template and a config, each a blob."""

    layers: list[Hosted]
    config: Hosted
    wrong_digest: bool = False  # the manifest names a digest its weights do not have

    @classmethod
    def synthetic(cls, size: int, seed: int = 0, rate: float | None = None) -> OllamaModel:
        return cls(
            layers=[Hosted.synthetic(size, seed=seed, rate=rate), Hosted.synthetic(120, seed=seed + 1)],
            config=Hosted.synthetic(480, seed=seed + 2),
        )

    @property
    def weights(self) -> Hosted:
        return self.layers[0]

    def digest(self, hosted: Hosted) -> str:
        if self.wrong_digest and hosted is self.weights:
            return "sha256:" + "0" * 64
        return "sha256:" + hosted.sha256()

    def blobs(self) -> dict[str, Hosted]:
        return {self.digest(h): h for h in [*self.layers, self.config]}

    def manifest(self) -> dict[str, object]:
        kinds = ["application/vnd.ollama.image.model", "application/vnd.ollama.image.template"]
        return {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": self.digest(self.config),
                "size": self.config.size,
            },
            "layers": [
                {"mediaType": kinds[min(i, 1)], "digest": self.digest(h), "size": h.size}
                for i, h in enumerate(self.layers)
            ],
        }


@dataclass
class Repo:
    files: dict[str, Hosted]
    token: str | None = None  # private: only this token sees it


@dataclass
class Hub:
    rate: float | None = None  # bytes per second per response; None: as fast as it goes
    files: dict[str, Hosted] = field(default_factory=dict)  # name → file, under /files/
    repos: dict[str, Repo] = field(default_factory=dict)  # org/name → repository
    ollama: dict[str, OllamaModel] = field(default_factory=dict)  # "namespace/model:tag" → model
    ollama_size: int = 4 << 20  # the weights of a model nobody hosted
    served: dict[str, int] = field(default_factory=dict)  # file name, repo path or digest → bytes sent
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Range header)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/files/{name:.+}", self._file)
        app.router.add_get("/api/models/{org}/{repo}/tree/{rev}", self._tree)
        app.router.add_get("/api/models/{org}/{repo}/tree/{rev}/{path:.+}", self._tree)
        app.router.add_route("*", "/{org}/{repo}/resolve/{rev}/{path:.+}", self._resolve)
        app.router.add_route("*", "/cdn/{org}/{repo}/{path:.+}", self._cdn)
        app.router.add_get("/v2/{ns}/{model}/manifests/{tag}", self._ollama_manifest)
        app.router.add_route("*", "/v2/{ns}/{model}/blobs/{digest}", self._ollama_blob)
        return app

    # --- Ollama's registry -------------------------------------------------------------------------

    def _ollama_model(self, request: web.Request) -> OllamaModel | None:
        m = request.match_info
        key = f"{m['ns']}/{m['model']}:{m.get('tag', '')}"
        if key not in self.ollama and "tag" in m and not m["model"].startswith("missing"):
            self.ollama[key] = OllamaModel.synthetic(self.ollama_size, seed=len(key))
        return self.ollama.get(key)

    async def _ollama_manifest(self, request: web.Request) -> web.Response:
        model = self._ollama_model(request)
        if model is None:
            error = {"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}
            return web.json_response({"errors": [error]}, status=404)
        manifest = await asyncio.to_thread(model.manifest)  # digests of large blobs take a while
        return web.json_response(manifest, content_type=MANIFEST_TYPE)

    async def _ollama_blob(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        for model in self.ollama.values():
            hosted = model.blobs().get(digest)
            if hosted is not None:
                return await self._send(request, hosted, digest)
        error = {"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}
        return web.json_response({"errors": [error]}, status=404)

    # --- plain files ---------------------------------------------------------------------------

    async def _file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        hosted = self.files.get(name)
        if hosted is None:
            return web.Response(status=404, text="Not Found")
        return await self._send(request, hosted, name)

    # --- the Hub ---------------------------------------------------------------------------------

    def _repo(self, request: web.Request) -> tuple[str, Repo | None]:
        key = f"{request.match_info['org']}/{request.match_info['repo']}"
        repo = self.repos.get(key)
        if repo is not None and repo.token is not None:
            if request.headers.get("Authorization") != f"Bearer {repo.token}":
                return key, None  # the Hub hides private repositories: a 404 like a missing one
        return key, repo

    async def _tree(self, request: web.Request) -> web.Response:
        _, repo = self._repo(request)
        if repo is None:
            return web.json_response(
                {"error": "Repository not found"}, status=404, headers={"X-Error-Code": "RepoNotFound"}
            )
        prefix = request.match_info.get("path", "")
        entries = []
        for path, hosted in sorted(repo.files.items()):
            if prefix and not path.startswith(prefix.rstrip("/") + "/"):
                continue
            entry: dict[str, object] = {"type": "file", "path": path, "size": hosted.size}
            if hosted.git:
                entry["oid"] = hosted.git_blob_sha1()
            else:
                entry["oid"] = hashlib.sha1(path.encode()).hexdigest()  # the LFS pointer's blob
                entry["lfs"] = {"oid": hosted.sha256(), "size": hosted.size, "pointerSize": 134}
            entries.append(entry)
        return web.json_response(entries)

    async def _resolve(self, request: web.Request) -> web.StreamResponse:
        key, repo = self._repo(request)
        path = request.match_info["path"]
        if repo is None:
            return web.json_response({"error": "Repository not found"}, status=404)
        hosted = repo.files.get(path)
        if hosted is None:
            return web.json_response({"error": "Entry not found"}, status=404)
        if hosted.git:
            return await self._send(request, hosted, f"{key}/{path}")
        raise web.HTTPFound(f"/cdn/{key}/{path}")  # LFS files live elsewhere

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        key = f"{request.match_info['org']}/{request.match_info['repo']}"
        repo = self.repos.get(key)
        hosted = repo.files.get(request.match_info["path"]) if repo else None
        if hosted is None:
            return web.Response(status=404)
        return await self._send(request, hosted, f"{key}/{request.match_info['path']}")

    # --- sending, with Range and a rate ----------------------------------------------------------

    async def _send(self, request: web.Request, hosted: Hosted, name: str) -> web.StreamResponse:
        self.requests.append((request.path, request.headers.get("Range", "")))
        start, end, status = 0, hosted.size, 200
        asked = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("Range", ""))
        if asked:
            start = int(asked.group(1))
            end = min(int(asked.group(2)) + 1, hosted.size) if asked.group(2) else hosted.size
            if start >= hosted.size:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{hosted.size}"})
            status = 206
        response = web.StreamResponse(status=status)
        response.content_length = end - start
        response.headers["Accept-Ranges"] = "bytes"
        if status == 206:
            response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{hosted.size}"
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        rate = hosted.rate or self.rate
        try:
            async for block in hosted.chunks(start, end):
                await response.write(block)
                self.served[name] = self.served.get(name, 0) + len(block)
                if rate:
                    await asyncio.sleep(len(block) / rate)
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away (a fetch killed mid-way): what it got is counted
        return response

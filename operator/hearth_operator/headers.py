"""Reading a model's headers over HTTP before its weights are downloaded: the first MiB of a GGUF
(more when its vocabulary is large), a safetensors shard's 8 + N bytes, a checkpoint's
config.json — with `Range` requests, a deadline on each and on the whole. What the files say is
turned into a ModelShape by the contract's pure readers (gguf_header, safetensors_header).

Hugging Face's tree (huggingface_hub, the Hub's own client, as the fetch uses it) names the
files and their sizes; `modelSource.files` picks among them as it does for the download. The
operator reads public repositories only: a gated or private one (whose token lives in a Secret
of the model's namespace, for the fetch Job) is reported, and `gpu.vramGiB` is then needed.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import httpx
from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.hf_api import RepoFile

from hearth_api import footprint, gguf_header, safetensors_header
from hearth_api.footprint import ModelShape
from hearth_api.gguf_header import BadHeader, NeedMore
from hearth_api.model_deployment import Engine, ModelDeploymentSpec, Reason
from hearth_api.weights_cache import Remote, remote

FIRST_READ = 1 << 20  # most GGUF headers fit; a 150 k-token vocabulary takes one more read
DEADLINE = 30.0  # seconds for all of one model's headers
H = TypeVar("H")
SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


class HeaderError(Exception):
    """Why the headers could not be read: UnreadableWeights (the files are wrong: a spec or
    source must change) or HeadersUnreachable (the network: retried)."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Read:
    shape: ModelShape
    source: str  # the files, for people: "hf://org/repo/model-Q4_K_M.gguf"
    weights_file: str | None = None  # hf:// GGUF: the (first) file's path in the repository


@dataclass
class HeaderReader:
    hf_endpoint: str | None = None
    timeout: float = 10.0  # per request

    async def read(self, spec: ModelDeploymentSpec) -> Read:
        source = spec.model_source
        fetched = remote(source.uri or "") if source else None
        if source is None or fetched is None:
            raise HeaderError(Reason.UNREADABLE_WEIGHTS, "no hf:// or https:// source to read")
        try:
            async with asyncio.timeout(DEADLINE):
                return await self._read(spec.engine, fetched, source.files)
        except TimeoutError as exc:
            raise HeaderError(
                Reason.HEADERS_UNREACHABLE, f"reading the headers of {fetched.uri} took over {DEADLINE:.0f} s"
            ) from exc

    async def _read(self, engine: Engine, fetched: Remote, pattern: str | None) -> Read:
        async with httpx.AsyncClient(follow_redirects=True, timeout=self.timeout) as http:
            if fetched.kind == "url":
                if engine is not Engine.LLAMACPP:
                    raise HeaderError(
                        Reason.UNREADABLE_WEIGHTS, "an https:// source is read as one GGUF file"
                    )
                return await _gguf(http, [(fetched.url, fetched.uri)])
            files = await self._tree(fetched)
            picked = _pick(files, fetched, pattern)
            base = f"hf://{fetched.repo}"
            if engine is Engine.LLAMACPP:
                ggufs = [f for f in picked if f.path.endswith(".gguf")]
                model = _one_model(ggufs, base)
                read = await _gguf(http, [(self._url(fetched, f.path), f"{base}/{f.path}") for f in model])
                return replace(read, weights_file=model[0].path)
            shards = [f for f in picked if f.path.endswith(".safetensors")]
            config = next((f for f in files if f.path == "config.json"), None)
            if not shards or config is None:
                raise HeaderError(
                    Reason.UNREADABLE_WEIGHTS, f"{base} has no config.json and .safetensors files for vLLM"
                )
            raw = await _get(http, self._url(fetched, "config.json"), f"{base}/config.json", None)
            try:
                cfg = json.loads(raw)
            except ValueError as exc:
                raise HeaderError(Reason.UNREADABLE_WEIGHTS, f"{base}/config.json is not JSON") from exc
            headers = [
                await _header(http, self._url(fetched, f.path), f"{base}/{f.path}", safetensors_header.parse)
                for f in shards
            ]
            try:
                shape = footprint.shape_of_safetensors([h for h, _ in headers], cfg)
            except BadHeader as exc:
                raise HeaderError(Reason.UNREADABLE_WEIGHTS, f"{base}: {exc}") from exc
            return Read(shape, f"{base} ({len(shards)} safetensors files)")

    def _url(self, fetched: Remote, path: str) -> str:
        return hf_hub_url(fetched.repo, path, revision=fetched.revision, endpoint=self.hf_endpoint)

    async def _tree(self, fetched: Remote) -> list[RepoFile]:
        api = HfApi(endpoint=self.hf_endpoint, token=False)

        def listing() -> list[RepoFile]:
            tree = api.list_repo_tree(fetched.repo, revision=fetched.revision, recursive=True)
            return [f for f in tree if isinstance(f, RepoFile)]

        try:
            return await asyncio.to_thread(listing)
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403, 404):
                raise HeaderError(
                    Reason.UNREADABLE_WEIGHTS,
                    f"no public repository {fetched.repo} (Hearth reads the headers of public "
                    "repositories; for a gated or private one, set gpu.vramGiB)",
                ) from exc
            raise HeaderError(Reason.HEADERS_UNREACHABLE, f"listing {fetched.repo}: {exc}") from exc
        except OSError as exc:
            raise HeaderError(Reason.HEADERS_UNREACHABLE, f"listing {fetched.repo}: {exc}") from exc


def _pick(files: list[RepoFile], fetched: Remote, pattern: str | None) -> list[RepoFile]:
    """The files the fetch downloads: the one the URI names, else those `files` matches."""
    if fetched.file:
        picked = [f for f in files if f.path == fetched.file]
        if not picked:
            raise HeaderError(Reason.UNREADABLE_WEIGHTS, f"{fetched.repo} has no file {fetched.file!r}")
        return picked
    return [f for f in files if pattern is None or fnmatch.fnmatch(f.path, pattern)]


def _one_model(ggufs: list[RepoFile], base: str) -> list[RepoFile]:
    """One GGUF, or the shards of one split GGUF (`-00001-of-00003.gguf`)."""
    if not ggufs:
        raise HeaderError(
            Reason.UNREADABLE_WEIGHTS, f"{base} has no .gguf file (modelSource.files picks none)"
        )
    stems = {SHARD.sub("", f.path) for f in ggufs}
    if len(stems) > 1:
        raise HeaderError(
            Reason.UNREADABLE_WEIGHTS,
            f"{base}: {len(ggufs)} GGUF files match; set modelSource.files to pick one quantisation",
        )
    return sorted(ggufs, key=lambda f: f.path)


async def _gguf(http: httpx.AsyncClient, files: list[tuple[str, str]]) -> Read:
    """A GGUF's shape from its headers (a split GGUF: the first shard's metadata, every shard's tensors)."""
    headers = [await _header(http, url, name, gguf_header.parse) for url, name in files]
    first, _ = headers[0]
    try:
        shape = footprint.shape_of_gguf(first)
    except BadHeader as exc:
        raise HeaderError(Reason.UNREADABLE_WEIGHTS, f"{files[0][1]}: {exc}") from exc
    if len(headers) > 1:
        total = sum(t.nbytes for h, _ in headers for t in h.tensors)
        shape = shape.model_copy(update={"weights_bytes": total})
    return Read(shape, files[0][1] if len(files) == 1 else f"{files[0][1]} (+{len(files) - 1} shards)")


async def _header(
    http: httpx.AsyncClient, url: str, name: str, parse: Callable[[bytes], H]
) -> tuple[H, int | None]:
    """Read the file's start until `parse` has its whole header; then check the file holds
    what the header describes."""
    data = b""
    want = FIRST_READ
    size: int | None = None
    while True:
        chunk, size = await _range(http, url, name, len(data), want)
        data += chunk
        try:
            header = parse(data)
        except NeedMore as more:
            if size is not None and more.size > size:
                raise HeaderError(
                    Reason.UNREADABLE_WEIGHTS, f"{name}: the file ends ({size} bytes) inside its header"
                ) from None
            if len(chunk) == 0:
                raise HeaderError(
                    Reason.UNREADABLE_WEIGHTS, f"{name}: the file ends inside its header"
                ) from None
            want = max(more.size, 2 * len(data))
            continue
        except BadHeader as exc:
            raise HeaderError(Reason.UNREADABLE_WEIGHTS, f"{name}: {exc}") from exc
        try:
            if isinstance(header, gguf_header.Header):
                gguf_header.check_size(header, size)
            elif isinstance(header, safetensors_header.Header) and size is not None:
                needed = header.data_offset + header.nbytes
                if needed > size:
                    raise BadHeader(f"the header describes {needed} bytes but the file has {size}")
        except BadHeader as exc:
            raise HeaderError(Reason.UNREADABLE_WEIGHTS, f"{name}: {exc}") from exc
        return header, size


async def _range(
    http: httpx.AsyncClient, url: str, name: str, start: int, end: int
) -> tuple[bytes, int | None]:
    """Bytes [start, end) of the file and its whole size (from Content-Range), never more than
    asked for even from a server that ignores Range."""
    try:
        async with http.stream("GET", url, headers={"Range": f"bytes={start}-{end - 1}"}) as response:
            if response.status_code in (401, 403, 404):
                raise HeaderError(Reason.UNREADABLE_WEIGHTS, f"{name}: HTTP {response.status_code}")
            if response.status_code == 416:
                return b"", start
            if response.status_code not in (200, 206):
                raise HeaderError(Reason.HEADERS_UNREACHABLE, f"{name}: HTTP {response.status_code}")
            size = _total(response)
            skip = start if response.status_code == 200 else 0  # the whole file from byte 0
            out = bytearray()
            async for block in response.aiter_bytes():
                out += block
                if len(out) >= skip + (end - start):
                    break
            return bytes(out[skip : skip + end - start]), size
    except httpx.HTTPError as exc:
        raise HeaderError(Reason.HEADERS_UNREACHABLE, f"{name}: {exc.__class__.__name__}: {exc}") from exc


async def _get(http: httpx.AsyncClient, url: str, name: str, limit: int | None) -> bytes:
    data, _ = await _range(http, url, name, 0, limit or 1 << 20)
    return data


def _total(response: httpx.Response) -> int | None:
    found = re.fullmatch(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    if found:
        return int(found.group(1))
    if response.status_code == 200 and response.headers.get("Content-Length"):
        return int(response.headers["Content-Length"])
    return None

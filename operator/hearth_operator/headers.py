"""Reading a model's headers over HTTP before its weights are downloaded: the first MiB of a GGUF
(more when its vocabulary is large), a safetensors shard's 8 + N bytes, a checkpoint's
config.json — with `Range` requests, a deadline on each and on the whole. What the files say is
turned into a ModelShape by the contract's pure readers (gguf_header, safetensors_header).

Hugging Face's tree API names the files and their sizes; `modelSource.files` picks among them
as it does for the download (huggingface_hub's own matching, as the fetch uses it). The operator
reads public repositories only: a gated or private one (whose token lives in a Secret
of the model's namespace, for the fetch Job) is reported, and `gpu.vramGiB` is then needed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar
from urllib.parse import quote

import httpx
from huggingface_hub import hf_hub_url
from huggingface_hub.utils._paths import filter_repo_objects  # public, but not re-exported for mypy

from hearth_api import footprint, gguf_header, safetensors_header
from hearth_api.footprint import ModelShape
from hearth_api.gguf_header import BadHeader, NeedMore
from hearth_api.model_deployment import Engine, ModelDeploymentSpec, Reason
from hearth_api.weights_cache import (
    OLLAMA_MANIFEST_TYPE,
    OLLAMA_MODEL_LAYER,
    OLLAMA_REGISTRY,
    OllamaName,
    Remote,
    remote,
)

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
    ollama_registry: str | None = "https://registry.ollama.ai"  # where registry.ollama.ai is; None: not read
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
        except (httpx.HTTPError, OSError) as exc:  # what the steps above did not name themselves
            why = f"reading the headers of {fetched.uri}: {exc.__class__.__name__}: {exc}"
            raise HeaderError(Reason.HEADERS_UNREACHABLE, why) from exc
        except (ValueError, KeyError, TypeError) as exc:  # an answer that is not what it should be
            why = f"reading the headers of {fetched.uri}: {exc.__class__.__name__}: {exc}"
            raise HeaderError(Reason.UNREADABLE_WEIGHTS, why) from exc

    async def _read(self, engine: Engine, fetched: Remote, pattern: str | None) -> Read:
        async with httpx.AsyncClient(follow_redirects=True, timeout=self.timeout) as http:
            if fetched.kind == "ollama":
                return await self._ollama(http, fetched)
            if fetched.kind == "url":
                if engine is not Engine.LLAMACPP:
                    raise HeaderError(
                        Reason.UNREADABLE_WEIGHTS, "an https:// source is read as one GGUF file"
                    )
                return await _gguf(http, [(fetched.url, fetched.uri)])
            files = await self._tree(http, fetched)
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

    async def _ollama(self, http: httpx.AsyncClient, fetched: Remote) -> Read:
        """The GGUF inside an Ollama model: its manifest's model layer, read as a blob."""
        name = OllamaName.parse(fetched.name)
        base = self.ollama_registry if name.host == OLLAMA_REGISTRY else f"https://{name.host}"
        if not base:
            raise HeaderError(Reason.HEADERS_UNREACHABLE, "reading Ollama's registry is turned off")
        where = f"{base.rstrip('/')}/v2/{name.namespace}/{name.model}"
        try:
            response = await http.get(
                f"{where}/manifests/{name.tag}", headers={"Accept": OLLAMA_MANIFEST_TYPE}
            )
        except httpx.HTTPError as exc:
            raise HeaderError(
                Reason.HEADERS_UNREACHABLE, f"{fetched.uri}: {exc.__class__.__name__}: {exc}"
            ) from exc
        if response.status_code == 404:
            raise HeaderError(Reason.UNREADABLE_WEIGHTS, f"{fetched.uri}: the registry has no such model")
        if response.status_code != 200:
            raise HeaderError(Reason.HEADERS_UNREACHABLE, f"{fetched.uri}: HTTP {response.status_code}")
        try:
            layers = response.json()["layers"]
            digest = next(str(x["digest"]) for x in layers if x.get("mediaType") == OLLAMA_MODEL_LAYER)
        except (ValueError, KeyError, TypeError, StopIteration) as exc:
            raise HeaderError(
                Reason.UNREADABLE_WEIGHTS, f"{fetched.uri}: a manifest without a model layer"
            ) from exc
        return await _gguf(http, [(f"{where}/blobs/{digest}", f"{fetched.uri} (layer {digest[7:19]})")])

    def _url(self, fetched: Remote, path: str) -> str:
        return hf_hub_url(fetched.repo, path, revision=fetched.revision, endpoint=self.hf_endpoint)

    async def _tree(self, http: httpx.AsyncClient, fetched: Remote) -> list[RepoFile]:
        """The repository's files from the Hub's tree API, page by page (its `Link` header), with
        this reader's timeout and no retries: huggingface_hub's own client backs off for ~25 s
        on a network that is down, too long to hold a reconcile."""
        endpoint = (self.hf_endpoint or "https://huggingface.co").rstrip("/")
        url: str | None = f"{endpoint}/api/models/{fetched.repo}/tree/{quote(fetched.revision, safe='')}"
        params: dict[str, str] | None = {"recursive": "true", "expand": "false"}
        files: list[RepoFile] = []
        while url:
            try:
                response = await http.get(url, params=params)
            except httpx.HTTPError as exc:
                why = f"listing {fetched.repo}: {exc.__class__.__name__}: {exc}"
                raise HeaderError(Reason.HEADERS_UNREACHABLE, why) from exc
            if response.status_code in (401, 403, 404):
                raise HeaderError(
                    Reason.UNREADABLE_WEIGHTS,
                    f"no public repository {fetched.repo} (Hearth reads the headers of public "
                    "repositories; for a gated or private one, set gpu.vramGiB)",
                )
            if response.status_code != 200:
                why = f"listing {fetched.repo}: HTTP {response.status_code}"
                raise HeaderError(Reason.HEADERS_UNREACHABLE, why)
            try:
                files += [
                    RepoFile(path=str(e["path"]), size=int(e.get("size") or 0))
                    for e in response.json()
                    if e.get("type") == "file"
                ]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise HeaderError(Reason.HEADERS_UNREACHABLE, f"listing {fetched.repo}: {exc!r}") from exc
            url, params = response.links.get("next", {}).get("url"), None
        return files


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int


def _pick(files: list[RepoFile], fetched: Remote, pattern: str | None) -> list[RepoFile]:
    """The files the fetch downloads: the one the URI names, else those `files` matches."""
    if fetched.file:
        picked = [f for f in files if f.path == fetched.file]
        if not picked:
            raise HeaderError(Reason.UNREADABLE_WEIGHTS, f"{fetched.repo} has no file {fetched.file!r}")
        return picked
    return list(filter_repo_objects(files, allow_patterns=pattern, key=lambda f: f.path))


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

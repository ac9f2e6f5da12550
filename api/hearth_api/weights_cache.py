"""The weights cache's layout: which `uri` sources Hearth downloads itself, and where in the cache
volume their files land. The operator (the engine's path, the fetch Job's args) and the fetch
(where it writes) both read it from here, so they cannot disagree. Pure.

    hf://org/repo                →  hf/org/repo/            (the repository's files)
    hf://org/repo@rev/dir/x.gguf →  hf/org/repo/dir/x.gguf  (one file of it)
    https://host/path/x.gguf     →  https/host/path/x.gguf
    ollama://mistral:7b          →  ollama/                 (Ollama's own store: OLLAMA_MODELS)

An `ollama://` model is pulled by an Ollama server (its pull API) into a store of Ollama's own
layout, which every Ollama model of the cache shares (layers are kept once, by digest). Other
schemes (`s3://`) are not Hearth's to fetch: the engine pulls them itself.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

# How the fetch tells the operator how it ended: its exit code (the Job's podFailurePolicy fails
# the Job at once on EXIT_PERMANENT) and a last line naming the reason (the pod's termination
# message, or its log's tail).
EXIT_RETRY = 1  # worth another try: the Job starts a new pod, which resumes the download
EXIT_PERMANENT = 3  # the same try would fail the same way (not found, no access, checksum, no room)
FAILURE_LINE_PREFIX = "hearth-fetch failed: "
DONE_LINE_PREFIX = "hearth-fetch done: "  # then the bytes in the cache
SHAPE_LINE_PREFIX = "hearth-fetch shape: "  # then the downloaded model's shape, JSON (footprint.ModelShape)
TERMINATION_LOG = "/dev/termination-log"  # a container's terminationMessagePath, by default
PROGRESS_PORT = 8090  # the fetch's GET /progress
OLLAMA_PORT = 11434  # the Ollama server a fetch of an ollama:// source pulls through
OLLAMA_STORE = "ollama"  # the folder of the cache that is Ollama's OLLAMA_MODELS
_HF_REPO = re.compile(r"^[A-Za-z0-9][-A-Za-z0-9_.]*/[A-Za-z0-9][-A-Za-z0-9_.]*$")
# Ollama's model names: [registry[:port]/][namespace/]model[:tag], as `ollama pull` takes them.
_OLLAMA_NAME = re.compile(
    r"^(?:[A-Za-z0-9][-A-Za-z0-9.]*(?::\d+)?/)?(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?"
    r"[A-Za-z0-9][-A-Za-z0-9_.]*(?::[A-Za-z0-9][-A-Za-z0-9_.]*)?$"
)


class BadSource(ValueError):
    """A `uri` Hearth cannot fetch as written; the message names what is wrong."""


@dataclass(frozen=True)
class Remote:
    """A source Hearth downloads: a Hugging Face repository (or one file of it), a URL, or an
    Ollama model."""

    kind: Literal["hf", "url", "ollama"]
    uri: str
    repo: str = ""  # hf: org/name
    revision: str = "main"  # hf: branch, tag or commit
    file: str = ""  # hf: one file of the repository ("" = the files `modelSource.files` picks)
    url: str = ""  # url: the file's address
    name: str = ""  # ollama: the model as Ollama names it (`mistral:7b`)

    @property
    def folder(self) -> str:
        """The folder of the cache (relative) that holds this source's files."""
        if self.kind == "ollama":
            return OLLAMA_STORE
        if self.kind == "hf":
            return f"hf/{self.repo}"
        parts = urlsplit(self.url)
        return posixpath.dirname(f"https/{parts.hostname}{parts.path}")

    @property
    def target(self) -> str:
        """What the engine is pointed at, relative to the cache: the file, or the folder (for
        Ollama, its store)."""
        if self.kind == "ollama":
            return self.folder
        if self.kind == "hf":
            return f"{self.folder}/{self.file}" if self.file else self.folder
        return f"{self.folder}/{self.filename}"

    @property
    def filename(self) -> str:
        return posixpath.basename(urlsplit(self.url).path)


def _safe_path(path: str, what: str) -> str:
    clean = posixpath.normpath(path)
    if path.startswith("/") or clean.startswith("..") or "/../" in f"/{path}/":
        raise BadSource(f"{what} {path!r} must be a relative path without '..'")
    return clean


def remote(uri: str) -> Remote | None:
    """The source as Hearth fetches it; None for a scheme the engine fetches itself."""
    if uri.startswith("hf://"):
        rest = uri[len("hf://") :].strip("/")
        parts = rest.split("/")
        if len(parts) < 2:
            raise BadSource(f"modelSource.uri {uri!r}: expected hf://org/repo or hf://org/repo/file")
        name, _, revision = parts[1].partition("@")
        repo = f"{parts[0]}/{name}"
        if not _HF_REPO.match(repo):
            raise BadSource(f"modelSource.uri {uri!r}: {repo!r} is not a Hugging Face repository id")
        file = _safe_path("/".join(parts[2:]), "the file") if len(parts) > 2 else ""
        return Remote("hf", uri, repo=repo, revision=revision or "main", file=file)
    if uri.startswith(("https://", "http://")):
        url = urlsplit(uri)
        if not url.hostname or not url.path.strip("/") or url.path.endswith("/"):
            raise BadSource(f"modelSource.uri {uri!r}: a URL must name a file (https://host/path/file)")
        _safe_path(url.path.lstrip("/"), "the URL's path")
        return Remote("url", uri, url=uri)
    if uri.startswith("ollama://"):
        name = uri[len("ollama://") :]
        if not _OLLAMA_NAME.match(name):
            raise BadSource(
                f"modelSource.uri {uri!r}: expected ollama://[registry/][namespace/]model[:tag] "
                "(e.g. ollama://mistral:7b)"
            )
        return Remote("ollama", uri, name=name)
    return None


def failure(text: str) -> tuple[str, str] | None:
    """(reason, message) from a fetch's termination message or log: its last failure line."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith(FAILURE_LINE_PREFIX):
            reason, _, message = line[len(FAILURE_LINE_PREFIX) :].partition(": ")
            return reason, message
    return None


def done_bytes(text: str) -> int | None:
    """The bytes a finished fetch left in the cache, from its termination message."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith(DONE_LINE_PREFIX):
            try:
                return int(line[len(DONE_LINE_PREFIX) :].split()[0])
            except (IndexError, ValueError):
                return None
    return None


def shape_report(text: str) -> dict[str, Any] | None:
    """What a finished fetch said of the model it downloaded (its termination message): the
    shape, as JSON, and the file an engine loads, if it said."""
    for line in reversed(text.strip().splitlines()):
        if line.startswith(SHAPE_LINE_PREFIX):
            try:
                report = json.loads(line[len(SHAPE_LINE_PREFIX) :])
            except ValueError:
                return None
            return report if isinstance(report, dict) else None
    return None


OLLAMA_REGISTRY = "registry.ollama.ai"
OLLAMA_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"  # the layer that is the GGUF


@dataclass(frozen=True)
class OllamaName:
    """`[registry/][namespace/]model[:tag]` as Ollama reads it (`qwen2.5:0.5b` is
    `registry.ollama.ai/library/qwen2.5` with tag `0.5b`)."""

    host: str
    namespace: str
    model: str
    tag: str

    @classmethod
    def parse(cls, raw: str) -> OllamaName:
        rest, tag = raw, "latest"
        if ":" in raw.rsplit("/", 1)[-1]:
            rest, tag = raw.rsplit(":", 1)
        parts = rest.split("/")
        host, namespace = OLLAMA_REGISTRY, "library"
        if len(parts) >= 3:
            host, namespace, model = parts[0], parts[1], "/".join(parts[2:])
        elif len(parts) == 2:
            namespace, model = parts
        else:
            model = parts[0]
        return cls(host, namespace, model, tag)

    @property
    def display(self) -> str:
        """The name as Ollama lists it: short for its own registry's library."""
        if self.host == OLLAMA_REGISTRY:
            short = self.model if self.namespace == "library" else f"{self.namespace}/{self.model}"
            return f"{short}:{self.tag}"
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

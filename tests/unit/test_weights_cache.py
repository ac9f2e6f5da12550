"""The weights cache's contract: which sources Hearth downloads, where their files land, and how
the fetch says how it ended."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hearth_api.model_deployment import ModelDeploymentSpec, ModelSource
from hearth_api.weights_cache import BadSource, done_bytes, failure, remote


@pytest.mark.parametrize(
    ("uri", "folder", "target"),
    [
        ("hf://Qwen/Qwen2.5-7B-Instruct", "hf/Qwen/Qwen2.5-7B-Instruct", "hf/Qwen/Qwen2.5-7B-Instruct"),
        ("hf://org/m-GGUF/sub/m.Q4.gguf", "hf/org/m-GGUF", "hf/org/m-GGUF/sub/m.Q4.gguf"),
        ("hf://org/m@v1.0/m.gguf", "hf/org/m", "hf/org/m/m.gguf"),
        ("https://host.lan/models/x.gguf", "https/host.lan/models", "https/host.lan/models/x.gguf"),
        ("http://127.0.0.1:9000/files/a/b.bin", "https/127.0.0.1/files/a", "https/127.0.0.1/files/a/b.bin"),
    ],
)
def test_each_source_has_one_place_in_the_cache(uri: str, folder: str, target: str) -> None:
    source = remote(uri)
    assert source is not None and (source.folder, source.target) == (folder, target)


def test_a_revision_is_kept_apart_from_the_repository_name() -> None:
    source = remote("hf://org/m@v1.0/m.gguf")
    assert source is not None and (source.repo, source.revision, source.file) == ("org/m", "v1.0", "m.gguf")
    plain = remote("hf://org/m")
    assert plain is not None and plain.revision == "main" and plain.file == ""


def test_sources_the_engine_fetches_itself_are_not_hearths() -> None:
    assert remote("s3://bucket/model") is None


@pytest.mark.parametrize(
    "name", ["mistral:7b", "qwen2.5", "user/tiny:q4_K_M", "registry.lan:5000/team/llama3.2:1b-instruct"]
)
def test_ollama_models_are_pulled_into_ollamas_own_store(name: str) -> None:
    source = remote(f"ollama://{name}")
    assert source is not None and (source.kind, source.name) == ("ollama", name)
    assert (source.folder, source.target) == ("ollama", "ollama")  # one store: layers kept once


@pytest.mark.parametrize("uri", ["ollama://", "ollama://mis tral", "ollama://a/b/c/d", "ollama://x:"])
def test_an_ollama_name_ollama_would_refuse_is_refused_at_once(uri: str) -> None:
    with pytest.raises(BadSource, match=r"ollama://\[registry/\]"):
        remote(uri)


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("hf://just-a-name", "hf://org/repo"),
        ("hf://org/re po", "repository id"),
        ("hf://org/m/../../etc/passwd", "'..'"),
        ("https://host.lan/models/", "must name a file"),
        ("https:///x.gguf", "must name a file"),
    ],
)
def test_a_source_that_cannot_be_fetched_is_refused_naming_why(uri: str, says: str) -> None:
    with pytest.raises(BadSource, match=says):
        remote(uri)
    with pytest.raises(ValidationError, match=says):  # and the spec says so at once
        ModelSource(uri=uri)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"pvc": "models", "path": "x.gguf", "prefetch": True}, "go with `uri`"),
        ({"uri": "ollama://mistral:7b", "sha256": "a" * 64}, "need an hf:// or https:// uri"),
        ({"uri": "ollama://mistral:7b", "files": "*.gguf"}, "Ollama checks its layers"),
        ({"uri": "s3://bucket/m", "prefetch": True}, "prefetch needs an hf://, https:// or ollama://"),
        ({"uri": "https://h/x.gguf", "sha256": "not-hex"}, "sha256"),
    ],
)
def test_download_options_only_where_hearth_downloads(fields: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        ModelSource.model_validate(fields)


def test_the_fetch_last_word_is_read_back() -> None:
    log = "INFO fetching…\nhearth-fetch failed: ChecksumMismatch: x.gguf has SHA-256 abc, not def\n"
    assert failure(log) == ("ChecksumMismatch", "x.gguf has SHA-256 abc, not def")
    assert failure("Traceback (most recent call last):\n  boom") is None
    assert done_bytes("hearth-fetch done: 98362432 bytes") == 98362432
    assert done_bytes("hearth-fetch failed: NotFound: gone") is None


def test_an_ollama_model_is_for_the_ollama_engine_only() -> None:
    spec = {"model": "m", "gpu": {"vramGiB": 4}, "modelSource": {"uri": "ollama://mistral:7b"}}
    with pytest.raises(ValidationError, match="only engine `ollama` reads Ollama's store"):
        ModelDeploymentSpec.model_validate({**spec, "engine": "llamacpp"})
    assert ModelDeploymentSpec.model_validate({**spec, "engine": "ollama"}).model_source is not None

"""What the fetch reports of the model it downloaded: the shape its files' headers describe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hearth_api import footprint, gguf_header
from hearth_api.gguf_header import BadHeader
from hearth_api.weights_cache import SHAPE_LINE_PREFIX, shape_report
from hearth_fetch import shape
from hearth_sim import synthetic_gguf


def test_a_downloaded_gguf_reports_its_shape_and_file(tmp_path: Path) -> None:
    source = synthetic_gguf.cached("mistral-7b", "Q4_K_M")
    folder = tmp_path / "hf" / "acme" / "mistral"
    folder.mkdir(parents=True)
    target = folder / "mistral-Q4_K_M.gguf"
    target.symlink_to(source)  # the cached sparse file: a copy would write its 4 GiB of holes
    found = shape.of_files(folder, [target, folder / "config.json"])
    assert found is not None
    got, file = found
    with source.open("rb") as f:
        assert got == footprint.shape_of_gguf(gguf_header.parse(f.read(8 << 20)))
    assert file == "mistral-Q4_K_M.gguf"
    line = f"{SHAPE_LINE_PREFIX}{json.dumps({'shape': got.model_dump(by_alias=True), 'file': file})}"
    report = shape_report(f"{line}\nhearth-fetch done: 42 bytes")
    assert report is not None and footprint.ModelShape.model_validate(report["shape"]) == got


def test_a_truncated_download_is_refused_not_reported(tmp_path: Path) -> None:
    source = synthetic_gguf.cached("mistral-7b", "Q4_K_M")
    cut = tmp_path / "cut.gguf"
    with source.open("rb") as f:
        cut.write_bytes(f.read(4 << 20))
    with pytest.raises(BadHeader, match="the file has"):
        shape.of_files(tmp_path, [cut])


def test_files_that_are_no_model_report_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    assert shape.of_files(tmp_path, [tmp_path / "notes.txt"]) is None
    assert shape.of_ollama_store(tmp_path, "qwen2.5:0.5b") is None  # no manifest: nothing pulled

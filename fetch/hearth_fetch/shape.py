"""The model the fetch just put into the cache, read back from the files' own headers: the
operator's VRAM estimate is recomputed from what was downloaded (for a gated repository, whose
headers the operator cannot read, it is the first estimate there is). Reported as one line of
the termination message (weights_cache.SHAPE_LINE_PREFIX).

Only the headers are read — a GGUF's first MiB or so, a shard's 8 + N bytes — never the weights.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hearth_api import footprint, gguf_header, safetensors_header
from hearth_api.footprint import ModelShape
from hearth_api.gguf_header import BadHeader, NeedMore
from hearth_api.weights_cache import OLLAMA_MODEL_LAYER, OllamaName

H = TypeVar("H")
SHARD = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$")


def _header(path: Path, parse: Callable[[bytes], H]) -> H:
    size = 1 << 20
    with path.open("rb") as f:
        while True:
            f.seek(0)
            data = f.read(size)
            try:
                return parse(data)
            except NeedMore as more:
                if len(data) < size:  # the file ended inside its header
                    raise BadHeader(f"{path.name}: the file ends inside its header") from None
                size = max(more.size, 2 * size)


def of_files(root: Path, files: list[Path]) -> tuple[ModelShape, str | None] | None:
    """The model in these downloaded files, and (for GGUF) the file an engine loads, relative
    to `root`; None when they hold no GGUF or Transformers checkpoint."""
    ggufs = sorted(p for p in files if p.name.endswith(".gguf"))
    if ggufs and len({SHARD.sub("", p.name) for p in ggufs}) == 1:
        headers = [_header(p, gguf_header.parse) for p in ggufs]
        for header, path in zip(headers, ggufs, strict=True):
            gguf_header.check_size(header, path.stat().st_size)
        shape = footprint.shape_of_gguf(headers[0])
        if len(headers) > 1:
            shape = shape.model_copy(update={"weights_bytes": sum(h.data_bytes for h in headers)})
        return shape, str(ggufs[0].relative_to(root))
    shards = sorted(p for p in files if p.name.endswith(".safetensors"))
    config = next((p for p in files if p.name == "config.json"), None)
    if shards and config is not None:
        parsed = [_header(p, safetensors_header.parse) for p in shards]
        return footprint.shape_of_safetensors(parsed, json.loads(config.read_text())), None
    return None


def of_ollama_store(store: Path, name: str) -> ModelShape | None:
    """The GGUF an Ollama pull left in its store: the blob its manifest names as the model layer."""
    n = OllamaName.parse(name)
    manifest = store / "manifests" / n.host / n.namespace / n.model / n.tag
    try:
        layers = json.loads(manifest.read_text())["layers"]
        digest = next(str(x["digest"]) for x in layers if x.get("mediaType") == OLLAMA_MODEL_LAYER)
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None
    blob = store / "blobs" / digest.replace(":", "-")
    return footprint.shape_of_gguf(_header(blob, gguf_header.parse))

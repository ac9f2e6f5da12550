"""Which sources Hearth's image was built from: a digest of the product's source roots, set as
a label by `make image` and compared by the kubelet before it runs Hearth's pods in the image —
a test must not pass against an image of yesterday's code.

`python -m hearth_sim.image` prints the digest of this checkout."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LABEL = "dev.hearth.source-digest"
# What deploy/Dockerfile copies into the image (and the build recipe itself).
SOURCES = ("pyproject.toml", "api", "operator", "router", "fetch", "sim_engine", "deploy/Dockerfile")


def source_digest(root: Path = ROOT) -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        top = root / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or ".egg-info" in str(path):
                continue
            digest.update(str(path.relative_to(root)).encode() + b"\0" + _built_from(path) + b"\0")
    return digest.hexdigest()[:16]


def _built_from(path: Path) -> bytes:
    """A file as the build sees it: of pyproject.toml, only what a build reads (the project's
    metadata, its build system, setuptools' settings), so a linter's settings rebuild nothing."""
    if path.name != "pyproject.toml":
        return path.read_bytes()
    config = tomllib.loads(path.read_text())
    built = {
        "project": config.get("project"),
        "build-system": config.get("build-system"),
        "setuptools": config.get("tool", {}).get("setuptools"),
    }
    return json.dumps(built, sort_keys=True).encode()


if __name__ == "__main__":
    print(source_digest())

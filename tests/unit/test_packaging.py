"""The image builds from every source root the package has (a root left out of the Dockerfile
installs a package with a module missing, found only when a pod starts)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dockerfile_copies_every_source_root() -> None:
    roots = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    missing = [r for r in roots["where"] if f"COPY {r} ./{r}" not in dockerfile]
    assert not missing, f"deploy/Dockerfile does not copy {missing}"

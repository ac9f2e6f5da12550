"""The image builds from every source root the package has (a root left out of the Dockerfile
installs a package with a module missing, found only when a pod starts), and the simulated
homelab is not one of them."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dockerfile_copies_every_source_root() -> None:
    roots = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    missing = [r for r in roots["where"] if f"COPY {r} ./{r}" not in dockerfile]
    assert not missing, f"deploy/Dockerfile does not copy {missing}"


def test_the_simulated_homelab_is_not_part_of_the_product() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    roots = project["tool"]["setuptools"]["packages"]["find"]["where"]
    assert "sim" not in roots
    needs = " ".join(project["project"]["dependencies"])
    for library in ("kmock", "jsonschema", "jsonpatch", "helm-python-sdk", "trustme"):
        assert library not in needs, f"{library} is the homelab's, not Hearth's"
    assert "hearth_sim.cli" not in str(project["project"]["scripts"])


def test_the_image_is_checked_against_every_source_it_copies() -> None:
    """The kubelet runs the image only if it was built from these sources (hearth_sim.image):
    a source root the Dockerfile copies but the digest misses would let a stale image pass."""
    from hearth_sim.image import SOURCES

    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copied = [
        line.split()[1]
        for line in dockerfile.splitlines()
        if line.startswith("COPY ") and "--from" not in line
    ]
    copied = [c for c in copied if c not in ("README.md", "deploy/wheelhouse")]
    assert set(copied) <= set(SOURCES), f"hearth_sim.image.SOURCES misses {set(copied) - set(SOURCES)}"

"""The front door stays a front door, and the project stands on its own: the README is short,
every page is in the docs' navigation, and nothing in the repository points outside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def test_the_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move detail into docs/"
    for page in (ROOT / "docs").glob("*.md"):
        if page.name != "index.md":
            assert f"docs/{page.name}" in "\n".join(lines), f"README.md links no docs/{page.name}"


def test_every_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    listed = {next(iter(item.values())) for item in config["nav"]}
    assert listed == {p.name for p in (ROOT / "docs").glob("*.md")}


def test_nothing_points_outside_the_repository() -> None:
    outside = "../" + "shared"  # spelt apart, so this file does not find itself
    design = "DESIGN" + ".md"
    found = []
    for path in tracked():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{path.relative_to(ROOT)}: {w}" for w in (outside, design) if w in text]
    assert not found, found

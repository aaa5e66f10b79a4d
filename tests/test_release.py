"""The release: LICENSE, CHANGELOG, and the workflow that pushes the image and the chart (checked by the
real actionlint; its shell steps run here on copies of the tree)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.support.helm import helm
from tests.support.testbin import binary

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yaml"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def steps() -> dict[str, dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return {s.get("name", s.get("uses")): s for s in workflow["jobs"]["release"]["steps"]}


def run_step(name: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A step's shell script, as the runner runs it (bash -e), with the environment it would get."""
    return subprocess.run(["bash", "-e", "-c", steps()[name]["run"]], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_actionlint_accepts_every_workflow() -> None:
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert WORKFLOW in workflows
    proc = subprocess.run([str(binary("actionlint")), *map(str, workflows)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text(WORKFLOW.read_text().replace("${{ steps.names.outputs.image }}", "${{ steps.nmes.outputs.image }}"))
    proc = subprocess.run([str(binary("actionlint")), str(bad)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 1 and "nmes" in proc.stdout


def test_a_tag_builds_both_architectures_with_buildah_and_pushes_image_and_chart() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True]["push"]["tags"] == ["v[0-9]+.[0-9]+.[0-9]+*"]  # YAML reads the key `on` as True
    assert workflow["permissions"] == {"contents": "read", "packages": "write"}
    build = steps()["Build the image for amd64 and arm64"]["run"]
    assert "buildah build" in build and "--platform linux/amd64,linux/arm64" in build
    assert 'buildah manifest push --all "${IMAGE}:${VERSION}" "docker://${IMAGE}:${VERSION}"' in \
        steps()["Push the image"]["run"]
    assert 'helm push "dist/preview-broker-${VERSION}.tgz" "$CHARTS"' in steps()["Package and push the chart"]["run"]
    names = steps()["Names of this release"]["run"]
    assert 'image=${REGISTRY}/${owner}/preview-broker' in names and 'charts=oci://${REGISTRY}/${owner}/charts' in names


def test_the_registry_host_is_named_only_by_the_workflow() -> None:
    """The project's own image path (REGISTRY/OWNER/preview-broker) is spelled out nowhere: the workflow
    makes it from its variables, and the chart in git leaves image.repository empty."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    ours = re.compile(r"\b[a-z0-9.-]+\.[a-z]{2,}(:\d+)?/[a-z0-9._-]+/preview-broker\b")
    naming = [f for f in tracked if (ROOT / f).is_file() and f != "tests/test_release.py"
              and ours.search((ROOT / f).read_text(errors="replace").replace("registry.example.com", ""))]
    assert naming == []
    assert "vars.REGISTRY || 'ghcr.io'" in WORKFLOW.read_text()
    assert yaml.safe_load((ROOT / "helm" / "preview-broker" / "values.yaml").read_text())["image"]["repository"] == ""


def test_the_released_chart_defaults_to_the_pushed_image_and_the_app_version(tmp_path) -> None:
    shutil.copytree(ROOT / "helm" / "preview-broker", tmp_path / "helm" / "preview-broker")
    image = "registry.example.com/acme/preview-broker"
    proc = run_step("Set the chart's default image", tmp_path, IMAGE=image)
    assert proc.returncode == 0, proc.stderr
    chart = tmp_path / "helm" / "preview-broker"
    values = chart / "ci" / "oidc-values.yaml"
    values.write_text(re.sub(r"^image: .*\n", "", values.read_text(), flags=re.MULTILINE))  # the chart's own default
    out = helm("template", "pb", str(chart), "-f", str(values)).stdout
    app_version = yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"]
    assert f"image: {image}:{app_version}" in out


@pytest.mark.parametrize(("version", "ok"), [(VERSION, True), ("9.9.9", False)])
def test_the_tag_must_be_the_version_everywhere(version, ok) -> None:
    proc = run_step("The tag is the version of the package and the chart", ROOT, VERSION=version)
    assert (proc.returncode == 0) is ok, proc.stdout + proc.stderr


def test_license_is_the_apache_license_pyproject_names() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"


def test_the_changelog_has_upgrade_notes_for_this_version_including_the_crds() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    section = text.split(f"\n## {VERSION} ", 1)[1].split("\n## ", 1)[0]
    notes = section.split("### Upgrade notes", 1)[1]
    assert "kubectl apply" in notes and "crds/previewenvironments.yaml" in notes and "Helm never upgrades" in notes

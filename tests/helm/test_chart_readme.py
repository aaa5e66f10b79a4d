"""The chart's README is generated from the values' comments (scripts/chart-readme) and is current."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.helm import CHART

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "chart-readme"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


def test_the_chart_readme_is_current() -> None:
    proc = run("--check")
    assert proc.returncode == 0, proc.stderr


def test_a_changed_comment_makes_it_stale_until_regenerated(tmp_path) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    values = chart / "values.yaml"
    values.write_text(values.read_text().replace("# -- Broker replicas", "# -- How many broker replicas"))
    stale = run("--check", "--chart", str(chart))
    assert stale.returncode == 1 and "is not what values.yaml says" in stale.stderr
    assert run("--chart", str(chart)).returncode == 0
    assert "| `broker.replicaCount` | `2` | How many broker replicas" in (chart / "README.md").read_text()
    assert run("--check", "--chart", str(chart)).returncode == 0


def test_every_value_is_in_the_readme() -> None:
    import yaml

    def leaves(node: object, prefix: str = "") -> list[str]:
        if isinstance(node, dict) and node:
            return [k for key, value in node.items() for k in leaves(value, f"{prefix}{key}.")]
        return [prefix.rstrip(".")]

    readme = (CHART / "README.md").read_text()
    documented = [line.split("`")[1] for line in readme.splitlines() if line.startswith("| `")]
    for leaf in leaves(yaml.safe_load((CHART / "values.yaml").read_text())):
        assert any(leaf == key or leaf.startswith(key + ".") for key in documented), leaf

"""The real helm, on the project's chart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.support.testbin import binary

CHART = Path(__file__).resolve().parents[2] / "helm" / "preview-broker"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(binary("helm")), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def render(values: Path | None = None, *sets: str) -> list[dict]:
    args = ["template", "pb", str(CHART), "--namespace", "preview-broker"]
    if values:
        args += ["-f", str(values)]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]



"""The dependency direction, enforced: import-linter's contracts (pyproject.toml) hold, and would
catch a violation; and no test module imports another test module."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("preview_broker", "broker", "controller", "kube", "foundation", "tests", "bench")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--config", str(ROOT / "pyproject.toml")], cwd=cwd, capture_output=True,
                          text=True, env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"})


def test_the_layering_contracts_hold() -> None:
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "0 broken" in proc.stdout


def _copy(tmp: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp


def test_the_contracts_catch_broker_and_controller_importing_each_other(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    with (tree / "broker" / "core.py").open("a") as f:
        f.write("\nfrom controller import policy  # noqa\n")
    proc = _lint(tree)
    assert proc.returncode != 0 and "BROKEN" in proc.stdout and "broker.core -> controller.policy" in proc.stdout


def test_the_contracts_catch_the_kube_layer_reaching_up(tmp_path: Path) -> None:
    tree = _copy(tmp_path)
    with (tree / "kube" / "queue.py").open("a") as f:
        f.write("\nimport broker.core  # noqa\n")
    proc = _lint(tree)
    assert proc.returncode != 0 and "kube.queue -> broker.core" in proc.stdout


def test_no_test_module_imports_another_test_module() -> None:
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                last = name.split(".")[-1]
                if name.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []

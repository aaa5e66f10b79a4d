"""`make demo` builds only what the demo runs: the scripts/testbin tools its stack starts, no other,
and installs no system package (nothing it starts comes from Debian)."""

from __future__ import annotations

import ast
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scripts" / "demo"


def _support_modules(path: Path, seen: set[Path]) -> set[Path]:
    """path and every tests/support module it imports, at any depth (imports inside functions too)."""
    if path in seen:
        return seen
    seen.add(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.support."):
            _support_modules(ROOT / (node.module.replace(".", "/") + ".py"), seen)
    return seen


def _tools_called(path: Path) -> set[str]:
    """The scripts/testbin tools a module asks for: binary(name[, tool]) and testbin_dir(*tools), where
    a starred argument names a tuple the module defines."""
    tree = ast.parse(path.read_text())
    constants = {t.id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                 for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Tuple)}
    tools: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)) or path.name == "testbin.py":
            continue
        args = [a.value for a in node.args if isinstance(a, ast.Constant)]
        if node.func.id == "binary":
            tools.add(args[-1])  # binary("kube-apiserver", "kube") is tool "kube"
        elif node.func.id == "testbin_dir":
            tools.update(args)
            for a in node.args:
                if isinstance(a, ast.Starred) and isinstance(a.value, ast.Name):
                    tools.update(constants[a.value.id])
    return tools


def _demo_tools() -> set[str]:
    """What scripts/demo itself asks scripts/testbin for before starting the stack."""
    return _tools_called(DEMO)


def test_the_demo_asks_testbin_for_exactly_what_its_stack_runs() -> None:
    modules = _support_modules(DEMO, set())
    used = set().union(*(_tools_called(m) for m in modules if m != DEMO))
    assert used == {"etcd", "kube", "dex", "crds"}  # the stack as it is today: a change here is deliberate
    assert _demo_tools() == used


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_builds_only_the_demos_tools_and_installs_no_package() -> None:
    dry = subprocess.run(["make", "-n", "-B", "demo"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    builds = [shlex.split(line) for line in dry.splitlines() if "scripts/testbin" in line]
    asked = [sorted(a for a in b[b.index("scripts/testbin") + 1:] if not a.startswith((">", "2>"))) for b in builds]
    assert asked == [sorted(_demo_tools())], dry
    assert "apt-get" not in dry, "make demo runs system-deps, but nothing the demo starts is a Debian package"

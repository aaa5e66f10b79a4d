"""Every runtime dependency in pyproject.toml is imported by the code, and everything the code
imports from outside the standard library is declared (installed only by accident is not enough)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("broker", "controller", "foundation", "kube", "preview_broker")
LOADED_BY_UVICORN = {"uvloop", "httptools"}


def _declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in deps}


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - set(PACKAGES)


def _distributions_of(modules: set[str]) -> dict[str, set[str]]:
    by_module = importlib.metadata.packages_distributions()
    return {m: {d.lower().replace("_", "-") for d in by_module.get(m, [])} for m in modules}


def test_every_declared_dependency_is_imported() -> None:
    used = set().union(*_distributions_of(_imported_top_level_modules()).values())
    # uvicorn imports these by name (loop="auto", http="auto"): tests/broker/test_serve.py shows it does
    assert _declared() - used == LOADED_BY_UVICORN


def test_everything_imported_from_outside_is_declared() -> None:
    declared = _declared()
    undeclared = {m: d for m, d in _distributions_of(_imported_top_level_modules()).items() if not d & declared}
    assert undeclared == {}

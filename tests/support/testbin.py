"""Locate the real binaries built by scripts/testbin (building them when missing)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


class MissingBinary(RuntimeError):
    pass


@cache
def testbin_dir(*names: str) -> Path:
    """Run scripts/testbin (instant when built) and return the directory it prints last."""
    cmd = [sys.executable, str(ROOT / "scripts" / "testbin"), *names]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # progress goes to our stderr
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise MissingBinary(
            f"scripts/testbin {' '.join(names)} failed (exit {proc.returncode}); run it by hand to see why. "
            "It needs Go >= 1.26 and the Go module proxy."
        )
    return Path(lines[-1])


def binary(name: str, tool: str | None = None) -> Path:
    path = testbin_dir(tool or name) / name
    if not path.exists():
        raise MissingBinary(f"{path} is missing after scripts/testbin {tool or name}; delete its cache and rerun")
    return path


def load_package() -> ModuleType:
    """scripts/testbin's package (scripts/testbin_lib), every module imported, for tests of its functions."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    importlib.import_module("testbin_lib.cli")  # which imports every other module of the package
    return sys.modules["testbin_lib"]

"""Locate the real binaries built by scripts/testbin (building them when missing)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
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


def load_script() -> ModuleType:
    """scripts/testbin as a module, for tests of its functions (it has no .py suffix)."""
    loader = importlib.machinery.SourceFileLoader("testbin_script", str(ROOT / "scripts" / "testbin"))
    spec = importlib.util.spec_from_loader("testbin_script", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["testbin_script"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module

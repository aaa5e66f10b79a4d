"""The benchmark scripts work (tiny settings, no timing asserted: figures live in docs/benchmarks.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.cluster


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_forward_auth_benchmark_runs_and_prints_the_summary_line() -> None:
    proc = run("bench/forward_auth.py", "--duration", "1", "--rounds", "1", "--connections", "4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"forward-auth: preview-broker \d+ req/s, oauth2-proxy \d+ req/s, ratio [\d.]+", last), last
    assert "| auth-valid | bare-asgi |" in proc.stdout


def test_propagation_benchmark_runs() -> None:
    proc = run("bench/propagation.py", "--count", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"create -> accepted\s+[\d.]+", proc.stdout) and "delete -> refused" in proc.stdout

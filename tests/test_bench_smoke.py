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


def test_propagation_benchmark_runs_and_reports(tmp_path: Path) -> None:
    proc = run("bench/propagation.py", "--count", "3", "--report", "--docs", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"\| create -> accepted \| 3 \| [\d.]+ \|", proc.stdout), proc.stdout
    assert re.search(r"\| delete -> refused \| 3 \| [\d.]+ \|", proc.stdout), proc.stdout
    report = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- begin propagation -->" in report and "bench-propagation.png" in report
    assert (tmp_path / "bench-propagation.png").read_bytes().startswith(b"\x89PNG")


def test_scale_benchmark_runs_and_reports(tmp_path: Path) -> None:
    proc = run("bench/scale.py", "--namespaces", "20", "--changes", "3", "--report", "--docs", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for figure in ("controller restart sync", "broker start to ready", "propagation p99 (create -> broker accepts)",
                   "broker RSS (end)", "broker peak RSS", "controller RSS (end)", "controller peak RSS"):
        assert re.search(re.escape(figure) + r"[^\n]*\s[\d.]+ (s|ms|MiB)\n", proc.stdout), (figure, proc.stdout)
    report = (tmp_path / "benchmarks.md").read_text()
    assert "<!-- begin scale -->" in report and "| delete -> refused | 3 |" in report
    assert (tmp_path / "bench-scale-propagation.png").read_bytes().startswith(b"\x89PNG")


def test_sections_are_replaced_in_place_and_others_kept(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from bench.report import update_section

    update_section(tmp_path, "a", "first A")
    update_section(tmp_path, "b", "only B")
    update_section(tmp_path, "a", "second A")
    text = (tmp_path / "benchmarks.md").read_text()
    assert text.startswith("# Benchmarks") and "second A" in text and "first A" not in text
    assert text.index("second A") < text.index("only B") and text.count("<!-- begin a -->") == 1

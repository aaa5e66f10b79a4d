"""tests/support/reports.py: the one hook that attaches component logs to a failing test's report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
TESTS = Path(__file__).resolve().parent

CONFTEST = '''
from tests.support.reports import logs_on_failure

def _events():
    raise RuntimeError("the apiserver is gone")

pytest_runtest_makereport = logs_on_failure(lambda: [("component log", lambda: "a line of the component"),
                                                     ("events", _events)])
'''


def test_a_failing_test_s_report_carries_every_section_and_a_passing_one_none(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_passes():\n    pass\n\ndef test_fails():\n    assert False\n")
    result = pytester.runpytest_inprocess("-rA")  # -rA prints a passing test's sections too
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert out.count("component log") == 1 and "a line of the component" in out
    # A log that cannot be read says why, and the test's own failure is still what is reported.
    assert "RuntimeError('the apiserver is gone')" in out and "assert False" in out


def test_only_the_shared_hook_defines_a_makereport_hook() -> None:
    defining = sorted(str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py")
                      if re.search(r"^\s*def pytest_runtest_makereport\b", p.read_text(), re.M))
    assert defining == ["support/reports.py"]

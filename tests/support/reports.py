"""The logs of the components a test ran against, attached to its report when it fails.

Written once, used by each conftest.py that starts components:

    pytest_runtest_makereport = logs_on_failure(lambda: [("control plane logs", cp.logs), ...])

`sections` is called only for a failing test and names each section with a callable that reads
its text; a callable that raises (the component may be what failed) gives its exception as the
section's text instead of hiding the test's own failure behind an internal error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

Section = tuple[str, Callable[[], str]]


def logs_on_failure(sections: Callable[[], Iterable[Section]]):  # type: ignore[no-untyped-def]
    """A pytest_runtest_makereport hook wrapper: each of `sections()` appended to a failed report."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
        outcome = yield
        report = outcome.get_result()
        if not report.failed:
            return
        for title, read in sections():
            try:
                text = read()
            except Exception as exc:  # noqa: BLE001 - the report says what reading the log raised
                text = repr(exc)
            report.sections.append((title, text))

    return pytest_runtest_makereport

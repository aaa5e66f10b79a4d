"""The end-to-end stack and a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import launch
from tests.support.reports import logs_on_failure
from tests.support.stack import Stack, start_stack

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
_stack: list[Stack] = []


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("e2e"))
    _stack.append(s)
    try:
        yield s
    finally:
        _stack.clear()
        s.stop()


@pytest.fixture(scope="package")
def browser(stack: Stack):
    # Package-scoped: Playwright's sync API keeps an event loop running in this thread while it
    # lives, and the asyncio tests of later packages need the thread's loop to themselves.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p, *stack.browser_args())
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context()
    pg = context.new_page()
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


pytest_runtest_makereport = logs_on_failure(lambda: [("e2e component logs", s.logs) for s in _stack[:1]])

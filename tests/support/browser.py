"""Debian's Chromium driven by Playwright, launched as every browser test here launches it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("PREVIEW_BROKER_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this
# closed network refuses; --no-sandbox because the tests run as root in CI.
BASE_ARGS = (
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def chromium_path() -> str:
    """The Chromium binary, or a test failure that says how to get it (never a skip)."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (make test does it as root), "
                    "or point PREVIEW_BROKER_CHROMIUM at one")
    return CHROMIUM


def launch(playwright, *extra_args: str):  # type: ignore[no-untyped-def]
    return playwright.chromium.launch(executable_path=chromium_path(), headless=True,
                                      args=[*BASE_ARGS, *extra_args])

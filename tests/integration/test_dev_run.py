"""`make run` (scripts/dev): starts Dex and the broker, prints a URL that logs in for real in
Chromium, and stops both on a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.browser import launch
from tests.support.dex import DEX_USER_EMAIL, DEX_USER_PASSWORD
from tests.support.procs import free_port

pytestmark = pytest.mark.dex
ROOT = Path(__file__).resolve().parents[2]


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in argv:
            found.append(argv)
    return found


def _start_dev(port: int) -> tuple[subprocess.Popen[str], str]:
    """scripts/dev on `port`, read up to its last printed line; returns the process and its output."""
    dev = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "dev")], cwd=ROOT,
                           env={**os.environ, "PORT": str(port)},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 300  # the first run may build Dex
    while time.monotonic() < deadline and dev.poll() is None:
        lines.append(dev.stdout.readline())  # type: ignore[union-attr]
        if lines[-1].startswith("  logs:"):
            break
    return dev, "".join(lines)


def _stop(dev: subprocess.Popen[str]) -> str:
    dev.send_signal(signal.SIGTERM)
    rest, _ = dev.communicate(timeout=60)
    return rest


def test_the_printed_url_logs_in_through_dex_in_chromium() -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    dev, output = _start_dev(port)
    try:
        url = re.search(r"open:\s+(\S+)", output)
        assert url, output
        with sync_playwright() as p:
            browser = launch(p)  # *.localhost resolves to loopback in Chromium itself
            page = browser.new_page()
            page.goto(url.group(1))
            if page.get_by_text("Log in with Email").count():
                page.get_by_text("Log in with Email").click()
            page.fill("#login", DEX_USER_EMAIL)
            page.fill("#password", DEX_USER_PASSWORD)
            page.click("#submit-login")
            page.wait_for_url(f"http://pr-1.preview.localhost:{port}/oauth2/userinfo")
            info = page.evaluate("() => JSON.parse(document.body.innerText)")
            browser.close()
        assert info == {"user": "admin", "email": DEX_USER_EMAIL, "groups": [],
                        "host": "pr-1.preview.localhost"}
    finally:
        if dev.poll() is None:
            _stop(dev)


def test_dev_run_prints_the_url_and_a_repeated_signal_still_stops_everything() -> None:
    port = free_port()
    dev, output = _start_dev(port)
    try:
        assert f"open:      http://auth.localhost:{port}/oauth2/start?rd=" in output, output
        work = re.search(r"logs:\s+(\S+)/broker\.log", output).group(1)  # type: ignore[union-attr]
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").text == "ready"
        assert len(_processes_mentioning(work)) == 1  # Dex, started with its config in the work dir

        # A group kill plus make passing the signal on: the second arrives during clean-up.
        dev.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        dev.send_signal(signal.SIGTERM)
        rest, _ = dev.communicate(timeout=60)
    finally:
        if dev.poll() is None:
            dev.kill()
    assert dev.returncode == 0 and "dev: stopped" in rest, rest
    assert _processes_mentioning(work) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/readyz")

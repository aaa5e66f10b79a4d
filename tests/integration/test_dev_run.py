"""`make run` (scripts/dev): starts Dex and the broker, prints the URL, and stops both on a signal."""

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


def test_dev_run_prints_the_url_and_a_repeated_signal_still_stops_everything() -> None:
    port = free_port()
    dev = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "dev")], cwd=ROOT,
                           env={**os.environ, "PORT": str(port)},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 300  # the first run may build Dex
        while time.monotonic() < deadline and dev.poll() is None:
            lines.append(dev.stdout.readline())  # type: ignore[union-attr]
            if lines[-1].startswith("  logs:"):
                break
        output = "".join(lines)
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

"""`make demo` (scripts/demo) starts the whole stack, prints URLs that work, and cleans up on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.loopback import loopback_client
from tests.support.procs import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_demo_over_https_prints_working_urls_and_stops_on_ctrl_c() -> None:
    port = free_port()
    demo = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo")], cwd=ROOT,
                            env={**os.environ, "DEMO_PORT": str(port), "DEMO_HTTPS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and demo.poll() is None:
            lines.append(demo.stdout.readline())  # type: ignore[union-attr]
            if lines[-1].startswith("  component logs:"):
                break
        out = "".join(lines)
        assert "https, as deployed" in out and "--ignore-certificate-errors-spki-list=" in out, out
        ca = re.search(r"a CA made for this run \((\S+)\)", out).group(1)  # type: ignore[union-attr]
        pr1 = re.search(r"pr-1, gate mode \(Traefik ForwardAuth\):\s+(\S+)", out).group(1)  # type: ignore[union-attr]
        assert pr1.startswith(f"https://pr-1.preview.test:{port}/")
        with loopback_client(verify=ssl.create_default_context(cafile=ca), timeout=10) as c:
            resp = c.get(pr1, headers={"accept": "text/html"})
            assert resp.status_code == 302 and "/oauth2/start?" in resp.headers["location"]
            assert resp.headers["set-cookie"].startswith("__Host-pb_login=")
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0 and "stopping and cleaning up" in rest, rest[-2000:]

"""Bounded connections, shown with real sockets against the real `preview-broker broker` process:
slow request headers are cut off after HEADER_TIMEOUT, connections past MAX_CONNECTIONS get an
immediate 503, and honest requests are served meanwhile and afterwards."""

from __future__ import annotations

import os
import re
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.procs import Proc, free_port, http_ok, wait_until

BASE = {
    "PREVIEW_BROKER_PUBLIC_URL": "https://auth.preview.example.com",
    "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
    "PREVIEW_BROKER_PROVIDER": "oidc",
    "PREVIEW_BROKER_OIDC_ISSUER": "https://dex.example.com/dex",  # asked only when a login starts
    "PREVIEW_BROKER_CLIENT_ID": "preview-broker",
    "PREVIEW_BROKER_CLIENT_SECRET": "very-secret-value",
    "PREVIEW_BROKER_SECRET_KEYS": "k" * 40,
    "PREVIEW_BROKER_ALLOWED_HOSTS": "pr-1.preview.example.com",
    "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "example.com",
}

HEADER_TIMEOUT = 3
MAX_CONNECTIONS = 20
SLACK = 1.5  # the sweep runs every quarter of the timeout; the rest is a loaded test machine


class Broker:
    def __init__(self, proc: Proc, port: int, metrics_port: int) -> None:
        self.proc, self.port, self.metrics_port = proc, port, metrics_port

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def closed_count(self, reason: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        m = re.search(rf'^preview_broker_connections_closed_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
        return float(m[1]) if m else 0.0  # absent: the "+ 1" asserted after the sockets' behaviour fails


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    port, metrics_port = free_port(), free_port()
    proc = Proc("broker", [sys.executable, "-m", "preview_broker", "broker", "--host", "127.0.0.1",
                           "--port", str(port), "--metrics-port", str(metrics_port)],
                tmp_path_factory.mktemp("broker") / "broker.log",
                env={**BASE, "PREVIEW_BROKER_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
                     "PREVIEW_BROKER_MAX_CONNECTIONS": str(MAX_CONNECTIONS)})
    # Proc adds its environment to this process's: PREVIEW_BROKER_* of the caller must not leak in.
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("PREVIEW_BROKER_")}
    try:
        proc.start()
    finally:
        os.environ.update(saved)
    try:
        wait_until(http_ok(f"http://127.0.0.1:{port}/healthz"), "the broker", 30, proc)
        yield Broker(proc, port, metrics_port)
    finally:
        proc.stop()


def closed_by_peer(sock: socket.socket, wait: float) -> bool:
    """Whether the server closes `sock` within `wait` seconds (anything it sends first is read)."""
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            return False
        try:
            if sock.recv(4096) == b"":
                return True
        except ConnectionResetError:
            return True
    return False


def test_a_client_trickling_header_lines_is_closed_after_the_header_timeout(broker: Broker) -> None:
    before = broker.closed_count("slow_headers")
    with broker.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: auth.preview.example.com\r\n")
        closed, n = False, 0
        while not closed and time.monotonic() - started < HEADER_TIMEOUT + SLACK + 2:
            closed = closed_by_peer(sock, 2)  # one header line every 2 seconds, as the attack does
            if not closed:
                n += 1
                try:
                    sock.sendall(b"X-Trickle-%d: 1\r\n" % n)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
        took = time.monotonic() - started
    assert closed, f"still open after {took:.1f}s of one header line every 2s"
    assert HEADER_TIMEOUT - 0.5 <= took <= HEADER_TIMEOUT + SLACK, took
    assert broker.closed_count("slow_headers") == before + 1


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(broker: Broker) -> None:
    with broker.connect() as sock:
        started = time.monotonic()
        assert closed_by_peer(sock, HEADER_TIMEOUT + SLACK)
        assert time.monotonic() - started >= HEADER_TIMEOUT - 0.5


def test_past_max_connections_a_new_connection_reads_503_at_once(broker: Broker) -> None:
    before = broker.closed_count("over_capacity")
    idle = [broker.connect() for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)  # the server has accepted them all
        with broker.connect() as extra:
            started = time.monotonic()
            extra.settimeout(1)
            answer = b""
            try:
                while chunk := extra.recv(4096):
                    answer += chunk
            except TimeoutError:
                pass
            took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
        head, _, body = answer.partition(b"\r\n\r\n")
        assert b"\r\nconnection: close" in head.lower() and body == b"Too many connections; try again soon.\n"
        assert took < 0.5, took  # answered and closed at once, not after a read or a timeout
    finally:
        for sock in idle:
            sock.close()
    assert broker.closed_count("over_capacity") == before + 1
    # The cap counts open connections: once the idle ones are gone, requests are served again.
    wait_until(http_ok(f"http://127.0.0.1:{broker.port}/healthz"), "a request after the cap", 5, broker.proc)


def test_honest_requests_are_served_while_slow_clients_wait_and_after_they_are_cut(broker: Broker) -> None:
    slow = [broker.connect() for _ in range(MAX_CONNECTIONS // 2)]
    try:
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
        with httpx.Client(base_url=f"http://127.0.0.1:{broker.port}", timeout=5) as client:
            assert [client.get("/healthz").status_code for _ in range(3)] == [200] * 3  # one kept-alive connection
            assert all(closed_by_peer(sock, HEADER_TIMEOUT + SLACK) for sock in slow)
            assert client.get("/healthz").status_code == 200
    finally:
        for sock in slow:
            sock.close()


def test_a_cap_the_open_file_limit_cannot_hold_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    proc = subprocess.run([sys.executable, "-m", "preview_broker", "broker", "--host", "127.0.0.1",
                           "--port", str(free_port()), "--metrics-port", "0"],
                          env={**clean, **BASE, "PREVIEW_BROKER_MAX_CONNECTIONS": "1000"},
                          capture_output=True, text=True, timeout=60, preexec_fn=low_limit)
    assert proc.returncode == 2
    assert proc.stderr.startswith("preview-broker: PREVIEW_BROKER_MAX_CONNECTIONS: is 1000, but the open-file "
                                  "limit (RLIMIT_NOFILE) is 512") and proc.stderr.count("\n") == 1, proc.stderr


class Conn:
    def __init__(self) -> None:
        self.scope: dict | None = None  # as uvicorn's protocol: None until a request's first byte


def test_the_sweep_closes_only_connections_owing_headers_past_the_timeout() -> None:
    from broker.connections import ConnectionGuard

    guard = ConnectionGuard(3, 10)  # a sweep every 0.5 s: late at the 6th sweep after first seen owing
    assert (guard.interval, guard.limit) == (0.5, 6)
    silent, trickling, quick, kept_alive = Conn(), Conn(), Conn(), Conn()
    conns = {silent, trickling, quick, kept_alive}
    kept_alive.scope = {"method": "GET"}  # between requests: uvicorn's keep-alive timeout's business
    assert guard.sweep(conns) == []  # tick 1: silent, trickling and quick seen owing headers
    trickling.scope = {}  # its first request began: still owed from the connection's start
    quick.scope = {"method": "GET"}
    for _ in range(5):
        assert guard.sweep(conns) == []  # ticks 2-6
    kept_alive.scope = {}  # a next request began after tick 6
    assert sorted(map(id, guard.sweep(conns))) == sorted(map(id, [silent, trickling]))  # tick 7 = 1 + 6
    conns -= {silent, trickling}
    for _ in range(5):
        assert guard.sweep(conns) == []  # ticks 8-12: kept_alive first seen owing at tick 7
    assert guard.sweep(conns) == [kept_alive]  # tick 13
    assert guard.owing == {}

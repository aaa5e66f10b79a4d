"""Junk traffic is counted on every request but logged at a bounded rate (issue: forward auth under junk)."""

from __future__ import annotations

import logging

from starlette.testclient import TestClient

from broker.boundedlog import BoundedLog
from tests.support.brokerunit import PR1, PR2


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _records(caplog, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


def test_ten_thousand_forged_cookies_cost_two_log_lines(client: TestClient, caplog) -> None:
    ticks = Ticks()
    broker = client.app.broker
    broker.bounded_log = BoundedLog(logging.getLogger("preview_broker.broker"), window=10, clock=ticks)
    decide = client.app.routes.forward_auth.decide
    headers = {"x-forwarded-proto": "https", "x-forwarded-host": PR1, "x-forwarded-uri": "/"}
    with caplog.at_level(logging.INFO):
        for i in range(10_000):
            resp = decide({**headers, "cookie": f"__Host-pb_session=forged{i}.AAAAAA.{'x' * 27}"}, "")
            assert resp.status_code == 401
            ticks.now += 0.0005  # 10,000 in 5 seconds: one window
        ticks.now += 10
        broker.bounded_log.flush()
    (first,) = _records(caplog, "refused")
    assert (first.reason, first.host, first.status) == ("session_bad_signature", PR1, 401)
    (summary,) = _records(caplog, "refused_summary")
    assert summary.count == 9_999 and summary.reason == "session_bad_signature"
    text = client.app.metrics_app()
    with TestClient(text) as metrics:
        exposition = metrics.get("/metrics").text
    assert 'preview_broker_refused_total{endpoint="auth",reason="session_bad_signature"} 10000.0' in exposition


def test_each_kind_and_host_gets_its_first_line_and_windows_restart() -> None:
    ticks = Ticks()
    lines: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record)

    logger = logging.getLogger("test.boundedlog")
    logger.handlers[:] = [Collect()]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    bounded = BoundedLog(logger, window=10, clock=ticks)
    for host in (PR1, PR2):
        for _ in range(3):
            bounded.refused("auth", "session_expired", 401, host=host)
    bounded.refused("callback", "state_bad_signature", 400)
    assert [(r.getMessage(), getattr(r, "host", "")) for r in lines] == [
        ("refused", PR1), ("refused", PR2), ("refused", "")]
    ticks.now += 11
    bounded.refused("auth", "session_expired", 401, host=PR1)  # a new window: the old one's summary first
    assert [(r.getMessage(), getattr(r, "count", None)) for r in lines[3:]] == [("refused_summary", 2),
                                                                               ("refused", None)]
    bounded.flush()  # PR2's window ended too; PR1's has just begun
    assert [(r.getMessage(), r.host, r.count) for r in lines[5:]] == [("refused_summary", PR2, 2)]


def test_hosts_from_headers_cannot_grow_the_memory_without_bound() -> None:
    ticks = Ticks()
    logger = logging.getLogger("test.boundedlog.keys")
    logger.setLevel(logging.INFO)
    bounded = BoundedLog(logger, window=10, clock=ticks, max_keys=100)
    for i in range(5_000):
        bounded.refused("auth", "host_not_live", 403, host=f"pr-{i}.preview.example.com")
    assert len(bounded._windows) <= 101


def test_nothing_is_kept_for_a_level_that_is_not_logged() -> None:
    logger = logging.getLogger("test.boundedlog.quiet")
    logger.setLevel(logging.ERROR)
    bounded = BoundedLog(logger)
    bounded.log(logging.INFO, "login_started", "gate", PR1)
    assert bounded._windows == {}


def test_anonymous_login_starts_are_logged_at_a_bounded_rate(client: TestClient, caplog) -> None:
    with caplog.at_level(logging.INFO):
        for _ in range(50):
            assert client.get("/oauth2/start", params={"rd": f"https://{PR1}/", "pl": "A" * 32}).status_code == 302
            assert client.get("/oauth2/start", params={"rd": "https://evil.example/"}).status_code == 400
    assert len(_records(caplog, "login_started")) == 1
    assert len(_records(caplog, "refused")) == 1

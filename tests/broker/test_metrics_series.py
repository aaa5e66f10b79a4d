"""What /metrics carries besides the login counters: answers by status code, calls to the IdP,
the process, Python and the build."""

from __future__ import annotations

from importlib import metadata

import httpx
from starlette.testclient import TestClient

from tests.support.brokerunit import PR1
from tests.support.flows import callback, forward_auth, gate_login, start_gate


def gate_login_failing(client: TestClient, idp) -> httpx.Response:  # type: ignore[no-untyped-def]
    params = start_gate(client, idp, f"https://{PR1}/")
    return callback(client, code="code-1", state=params["state"])


def scrape(client: TestClient) -> str:
    with TestClient(client.app.metrics_app()) as metrics:
        return metrics.get("/metrics").text


def sample(text: str, series: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(series + " ")]
    return float(line.rsplit(" ", 1)[1])


def test_answers_are_counted_by_endpoint_and_status_code(client, idp) -> None:
    ticket = gate_login(client, idp, f"https://{PR1}/")  # 302 on the preview host (auth), start, callback
    forward_auth(client, ticket)  # 302: the ticket redeemed
    forward_auth(client, f"https://{PR1}/")  # 401: this test client keeps no preview cookie
    forward_auth(client, "https://pr-2.preview.example.com/")  # 401
    client.get("/oauth2/callback", params={"code": "c", "state": "junk"})  # 400
    text = scrape(client)
    assert sample(text, 'preview_broker_requests_total{code="302",endpoint="auth"}') == 2
    assert sample(text, 'preview_broker_requests_total{code="401",endpoint="auth"}') == 2
    assert sample(text, 'preview_broker_requests_total{code="302",endpoint="callback"}') == 1
    assert sample(text, 'preview_broker_requests_total{code="400",endpoint="callback"}') == 1
    assert sample(text, 'preview_broker_requests_total{code="302",endpoint="start"}') == 1


def test_calls_to_the_identity_provider_are_timed(client, idp) -> None:
    before = scrape(client)
    assert sample(before, 'preview_broker_upstream_errors_total{reason="5xx",upstream="idp"}') == 0  # from the start
    gate_login(client, idp, f"https://{PR1}/")  # discovery, the token exchange, the keys
    text = scrape(client)
    assert sample(text, 'preview_broker_upstream_request_duration_seconds_count{upstream="idp"}') >= 2
    assert sample(text, 'preview_broker_upstream_errors_total{reason="5xx",upstream="idp"}') == 0


def test_idp_failures_are_counted_by_reason(client, idp) -> None:
    idp.token_route.mock(return_value=httpx.Response(503))
    ticket = gate_login_failing(client, idp)
    assert ticket.status_code == 502
    text = scrape(client)
    assert sample(text, 'preview_broker_upstream_errors_total{reason="5xx",upstream="idp"}') >= 1


def test_process_python_and_build_series() -> None:
    from prometheus_client import generate_latest

    from broker.metrics import Metrics

    text = generate_latest(Metrics().registry).decode()
    assert "process_resident_memory_bytes " in text and "process_cpu_seconds_total " in text
    assert "python_info{" in text and "python_gc_objects_collected_total{" in text
    version = metadata.version("preview-broker")
    assert 'preview_broker_build_info{component="broker",python_version="' in text
    assert f'version="{version}"}} 1.0' in text


def test_the_controller_has_them_too() -> None:
    from prometheus_client import generate_latest

    from controller.metrics import ControllerMetrics

    text = generate_latest(ControllerMetrics().registry).decode()
    assert 'preview_broker_build_info{component="controller"' in text and "process_open_fds " in text
    for upstream in ("github", "s3"):
        assert f'preview_broker_upstream_errors_total{{reason="timeout",upstream="{upstream}"}} 0.0' in text

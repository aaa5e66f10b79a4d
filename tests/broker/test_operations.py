"""Health, readiness, metrics."""

from __future__ import annotations

from starlette.testclient import TestClient

from broker.app import create_app
from tests.support.brokerunit import PUBLIC, make_settings
from tests.support.flows import broker_start, forward_auth


class _Unsynced:
    ready = False

    def __contains__(self, host: object) -> bool:
        return False

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_readyz_is_503_until_the_allowlist_synced(idp) -> None:
    with TestClient(create_app(make_settings(), allowlist=_Unsynced()), base_url=PUBLIC) as c:
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200


def test_metrics_count_logins_refusals_and_auth_checks(client: TestClient) -> None:
    broker_start(client, "https://pr-1.preview.example.com/")
    client.get("/oauth2/start", params={"rd": "https://evil.com/"})
    forward_auth(client, "https://pr-1.preview.example.com/")
    forward_auth(client, "https://pr-1.preview.example.com/", "__Host-pb_session=forged.AAAA.AAAA")
    with TestClient(client.app.metrics_app()) as metrics:
        text = metrics.get("/metrics").text
    assert 'preview_broker_logins_started_total{mode="gate"} 1.0' in text
    assert 'preview_broker_refused_total{endpoint="start",reason="redirect_host_not_allowed"} 1.0' in text
    assert 'preview_broker_auth_checks_total{result="unauthenticated"} 2.0' in text
    assert 'preview_broker_refused_total{endpoint="auth",reason="session_bad_signature"} 1.0' in text
    assert 'preview_broker_request_duration_seconds_count{endpoint="auth"} 3.0' in text  # the login began there too


def test_metrics_are_not_served_on_the_public_port(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 404
    with TestClient(client.app.metrics_app()) as metrics:
        assert metrics.get("/metrics").status_code == 200
        assert metrics.get("/healthz").status_code == 200

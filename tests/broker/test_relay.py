"""Relay mode: the preview app is the OAuth client; the broker only carries the round trip."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest
from starlette.testclient import TestClient

from tests.broker.conftest import PR2, PUBLIC
from tests.broker.fakeidp import CLIENT_ID, ISSUER, FakeIdP
from tests.broker.flows import callback, query_of

RETURN_TO = f"https://{PR2}/auth/callback?keep=1"


def relay(client: TestClient, **overrides: str):
    params = {
        "return_to": RETURN_TO,
        "client_id": CLIENT_ID,
        "response_type": "code",
        "state": "app-state-123",
        "scope": "openid email",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "nonce": "app-nonce",
        **overrides,
    }
    return client.get("/oauth2/relay?" + urlencode({k: v for k, v in params.items() if v is not None}))


def test_relay_forwards_to_idp_with_master_callback_and_app_params(client: TestClient, idp: FakeIdP) -> None:
    resp = relay(client)
    assert resp.status_code == 302
    location = resp.headers["location"]
    assert location.startswith(f"{ISSUER}/authorize?")
    q = query_of(location)
    assert q["redirect_uri"] == f"{PUBLIC}/oauth2/callback"
    assert q["code_challenge"] == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert q["code_challenge_method"] == "S256"
    assert q["scope"] == "openid email" and q["nonce"] == "app-nonce" and q["client_id"] == CLIENT_ID
    assert "return_to" not in q
    assert q["state"] != "app-state-123"  # wrapped in the signed envelope


def test_callback_returns_code_and_original_state_to_the_app(client: TestClient, idp: FakeIdP) -> None:
    state = query_of(relay(client).headers["location"])["state"]
    resp = callback(client, code="code-xyz", state=state, iss=ISSUER)
    assert resp.status_code == 302
    location = resp.headers["location"]
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", PR2, "/auth/callback")
    assert query_of(location) == {"keep": "1", "code": "code-xyz", "state": "app-state-123", "iss": ISSUER}
    assert idp.token_requests == []  # the app exchanges the code itself


def test_callback_passes_errors_back_to_the_app(client: TestClient, idp: FakeIdP) -> None:
    state = query_of(relay(client).headers["location"])["state"]
    resp = callback(client, error="access_denied", error_description="user said no", state=state)
    assert resp.status_code == 302
    assert query_of(resp.headers["location"]) == {
        "keep": "1",
        "error": "access_denied",
        "error_description": "user said no",
        "state": "app-state-123",
    }


def test_relay_without_app_state_returns_none(client: TestClient, idp: FakeIdP) -> None:
    state = query_of(relay(client, state=None).headers["location"])["state"]
    resp = callback(client, code="c", state=state)
    assert "state" not in query_of(resp.headers["location"])


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"client_id": "someone-else"}, "relay_unknown_client"),
        ({"client_id": None}, "relay_unknown_client"),
        ({"response_type": "token"}, "relay_response_type"),
        ({"response_type": None}, "relay_response_type"),
        ({"redirect_uri": "https://evil.com/cb"}, "relay_redirect_uri"),
        ({"return_to": None}, "redirect_empty"),
        ({"return_to": "/relative/only"}, "redirect_relative_without_origin"),
        ({"return_to": "https://pr-9.preview.example.com/cb"}, "redirect_host_not_allowed"),
        ({"state": "s" * 2049}, "oversized_param"),
    ],
)
def test_relay_refuses(client: TestClient, idp: FakeIdP, overrides, reason) -> None:
    resp = relay(client, **overrides)
    assert resp.status_code == 400
    assert "location" not in resp.headers
    assert reason in resp.text


def test_relay_accepts_matching_redirect_uri(client: TestClient, idp: FakeIdP) -> None:
    assert relay(client, redirect_uri=f"{PUBLIC}/oauth2/callback").status_code == 302


def test_relay_target_deleted_while_at_idp(client: TestClient, idp: FakeIdP, allowlist) -> None:
    state = query_of(relay(client).headers["location"])["state"]
    allowlist.discard(PR2)
    resp = callback(client, code="c", state=state)
    assert resp.status_code == 410 and "location" not in resp.headers


def test_relay_state_replay_refused(client: TestClient, idp: FakeIdP) -> None:
    state = query_of(relay(client).headers["location"])["state"]
    assert callback(client, code="c", state=state).status_code == 302
    assert callback(client, code="c", state=state).status_code == 400


def test_relay_callback_without_code_or_error(client: TestClient, idp: FakeIdP) -> None:
    state = query_of(relay(client).headers["location"])["state"]
    assert callback(client, state=state).status_code == 400

"""Relay mode: the preview app is its own OAuth client; the broker only carries the round trip.

Relay is off until RELAY_CLIENT_IDS names app clients, the broker's gate client is never
relayable, only documented parameters travel, and a relay login that did not start on the
preview it returns to is confirmed by the person first.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from starlette.testclient import TestClient

from broker.app import create_app
from tests.support.brokerunit import PR1, PR2, PUBLIC, make_settings
from tests.support.fakeidp import CLIENT_ID, ISSUER, FakeIdP
from tests.support.flows import callback, query_of

APP_CLIENT = "pr-app"
RETURN_TO = f"https://{PR2}/auth/callback?keep=1"
FROM_PR2 = {"referer": f"https://{PR2}/login"}


@pytest.fixture
def client(allowlist, clock, idp: FakeIdP):
    app = create_app(make_settings(relay_client_ids=[APP_CLIENT]), allowlist=allowlist, clock=clock)
    with TestClient(app, base_url=PUBLIC, follow_redirects=False) as c:
        yield c


def relay(client: TestClient, headers: dict[str, str] | None = FROM_PR2, **overrides: str | None):
    params = {
        "return_to": RETURN_TO,
        "client_id": APP_CLIENT,
        "response_type": "code",
        "state": "app-state-123",
        "scope": "openid email",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "nonce": "app-nonce",
        **overrides,
    }
    return client.get("/oauth2/relay?" + urlencode({k: v for k, v in params.items() if v is not None}),
                      headers=headers or {})


def relay_state(client: TestClient) -> str:
    resp = relay(client)
    assert resp.status_code == 302, resp.text
    return query_of(resp.headers["location"])["state"]


def test_relay_forwards_to_idp_with_master_callback_and_app_params(client: TestClient) -> None:
    resp = relay(client)
    assert resp.status_code == 302
    location = resp.headers["location"]
    assert location.startswith(f"{ISSUER}/authorize?")
    q = query_of(location)
    assert q["redirect_uri"] == f"{PUBLIC}/oauth2/callback"
    assert q["code_challenge"] == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    assert q["code_challenge_method"] == "S256"
    assert q["scope"] == "openid email" and q["nonce"] == "app-nonce" and q["client_id"] == APP_CLIENT
    assert "return_to" not in q
    assert q["state"] != "app-state-123"  # wrapped in the signed envelope


def test_callback_returns_code_and_original_state_to_the_app(client: TestClient, idp: FakeIdP) -> None:
    resp = callback(client, code="code-xyz", state=relay_state(client), iss=ISSUER)
    assert resp.status_code == 302
    location = resp.headers["location"]
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", PR2, "/auth/callback")
    assert query_of(location) == {"keep": "1", "code": "code-xyz", "state": "app-state-123", "iss": ISSUER}
    assert idp.token_requests == []  # the app exchanges the code itself


def test_callback_passes_errors_back_to_the_app(client: TestClient) -> None:
    resp = callback(client, error="access_denied", error_description="user said no", state=relay_state(client))
    assert resp.status_code == 302
    assert query_of(resp.headers["location"]) == {
        "keep": "1",
        "error": "access_denied",
        "error_description": "user said no",
        "state": "app-state-123",
    }


def test_relay_without_app_state_returns_none(client: TestClient) -> None:
    state = query_of(relay(client, state=None).headers["location"])["state"]
    resp = callback(client, code="c", state=state)
    assert "state" not in query_of(resp.headers["location"])


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"client_id": "someone-else"}, "relay_unknown_client"),
        ({"client_id": CLIENT_ID}, "relay_unknown_client"),  # the broker's own gate client
        ({"client_id": None}, "relay_unknown_client"),
        ({"response_type": "token"}, "relay_response_type"),
        ({"response_type": None}, "relay_response_type"),
        ({"redirect_uri": "https://evil.com/cb"}, "relay_redirect_uri"),
        ({"return_to": None}, "redirect_empty"),
        ({"return_to": "/relative/only"}, "redirect_relative_without_origin"),
        ({"return_to": "https://pr-9.preview.example.com/cb"}, "redirect_host_not_allowed"),
        ({"state": "s" * 2049}, "oversized_param"),
        ({"response_mode": "form_post"}, "relay_param_not_allowed"),
        ({"request_uri": "https://evil.com/req.jwt"}, "relay_param_not_allowed"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "relay_param_not_allowed"),
        ({"claims": '{"id_token":{}}'}, "relay_param_not_allowed"),
        ({"return_to": f"https://{PR2}/cb?code=planted"}, "relay_return_to_reserved"),
        ({"return_to": f"https://{PR2}/cb?state=planted"}, "relay_return_to_reserved"),
        ({"return_to": f"https://{PR2}/cb?iss=https://evil"}, "relay_return_to_reserved"),
        ({"return_to": f"https://{PR2}/cb?error="}, "relay_return_to_reserved"),
    ],
)
def test_relay_refuses(client: TestClient, overrides, reason) -> None:
    resp = relay(client, **overrides)
    assert resp.status_code == 400
    assert "location" not in resp.headers
    assert reason in resp.text


def test_relay_is_off_by_default_even_for_the_gate_client(idp: FakeIdP, allowlist) -> None:
    with TestClient(create_app(make_settings(), allowlist=allowlist), base_url=PUBLIC, follow_redirects=False) as c:
        for client_id in (CLIENT_ID, APP_CLIENT):
            resp = relay(c, client_id=client_id)
            assert resp.status_code == 400 and "relay_unknown_client" in resp.text


def test_relay_forwards_the_documented_provider_extensions(client: TestClient) -> None:
    extras = {"prompt": "consent", "login_hint": "ada@example.com", "max_age": "0", "ui_locales": "de",
              "acr_values": "mfa", "hd": "example.com", "access_type": "offline", "allow_signup": "false"}
    q = query_of(relay(client, **extras).headers["location"])
    assert {k: q[k] for k in extras} == extras


def test_relay_accepts_matching_redirect_uri(client: TestClient) -> None:
    assert relay(client, redirect_uri=f"{PUBLIC}/oauth2/callback").status_code == 302


def test_relay_target_deleted_while_at_idp(client: TestClient, allowlist) -> None:
    state = relay_state(client)
    allowlist.discard(PR2)
    resp = callback(client, code="c", state=state)
    assert resp.status_code == 410 and "location" not in resp.headers


def test_relay_state_replay_refused(client: TestClient) -> None:
    state = relay_state(client)
    assert callback(client, code="c", state=state).status_code == 302
    assert callback(client, code="c", state=state).status_code == 400


def test_relay_callback_without_code_or_error(client: TestClient) -> None:
    assert callback(client, state=relay_state(client)).status_code == 400


# --- started elsewhere: the person confirms on the broker's page first -----------------------


@pytest.mark.parametrize(
    "headers",
    [
        None,  # pasted into the address bar, or a no-referrer policy
        {"referer": f"https://{PR1}/page"},  # another preview's page links here
        {"referer": "https://evil.com/"},
        {"origin": f"https://{PR1}"},
        {"referer": f"http://{PR2}/login"},  # another scheme is another origin
        {"referer": f"https://{PR2}:8443/login"},
        {"referer": "not a url ["},
    ],
)
def test_a_relay_started_elsewhere_shows_a_confirmation_naming_the_preview(client: TestClient, idp: FakeIdP,
                                                                           headers) -> None:
    resp = relay(client, headers=headers)
    assert resp.status_code == 200 and "location" not in resp.headers
    assert PR2 in resp.text and 'method="post"' in resp.text and 'action="/oauth2/relay"' in resp.text
    assert resp.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    assert resp.headers["set-cookie"].startswith("__Host-pb_bind=")
    assert not [c for c in idp.router.calls if "/authorize" in str(c.request.url)]


def _confirm(client: TestClient, page_text: str, origin: str | None = PUBLIC, **changes: str):
    import re
    from html import unescape

    fields = {name: unescape(value) for name, value in re.findall(r'name="(\w+)" value="([^"]*)"', page_text)}
    fields.update(changes)
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if origin:
        headers["origin"] = origin
    return client.post("/oauth2/relay", content=urlencode(fields), headers=headers)


def test_confirming_on_the_broker_page_continues_to_the_idp(client: TestClient) -> None:
    shown = relay(client, headers=None)
    resp = _confirm(client, shown.text)
    assert resp.status_code == 303
    q = query_of(resp.headers["location"])
    assert resp.headers["location"].startswith(f"{ISSUER}/authorize?")
    assert q["client_id"] == APP_CLIENT and q["nonce"] == "app-nonce"
    back = callback(client, code="c", state=q["state"])
    assert back.status_code == 302 and query_of(back.headers["location"])["state"] == "app-state-123"


def test_a_confirmation_from_another_browser_is_refused(client: TestClient) -> None:
    shown = relay(client, headers=None)
    client.cookies.clear()  # the attacker's own browser, holding the victim's page (or vice versa)
    resp = _confirm(client, shown.text)
    assert resp.status_code == 400 and "relay_confirm_mismatch" in resp.text


def test_a_confirmation_posted_from_another_origin_is_refused(client: TestClient) -> None:
    shown = relay(client, headers=None)
    resp = _confirm(client, shown.text, origin=f"https://{PR1}")
    assert resp.status_code == 403 and "location" not in resp.headers


def test_a_confirmation_cannot_carry_another_query(client: TestClient) -> None:
    shown = relay(client, headers=None)
    other = urlencode({"return_to": f"https://{PR1}/cb", "client_id": APP_CLIENT, "response_type": "code"})
    resp = _confirm(client, shown.text, query=other)
    assert resp.status_code == 400 and "relay_confirm_mismatch" in resp.text


def test_a_confirmation_expires(client: TestClient, clock, settings) -> None:
    shown = relay(client, headers=None)
    clock.advance(settings.state_ttl + 1)
    resp = _confirm(client, shown.text)
    assert resp.status_code == 400 and "relay_confirm_expired" in resp.text


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        ("csrf=x&query=y", "text/plain", "bad_form"),
        ("q=" + "x" * 20_000, "application/x-www-form-urlencoded", "oversized_form"),
        ("query=%FF", "application/x-www-form-urlencoded", "bad_query"),
        ("query=a&query=b", "application/x-www-form-urlencoded", "duplicate_param"),
        ("", "application/x-www-form-urlencoded", "relay_confirm_missing"),
    ],
)
def test_a_bad_confirmation_body_is_a_clear_400(client: TestClient, body: str, content_type: str, reason) -> None:
    relay(client, headers=None)  # sets the bind cookie
    resp = client.post("/oauth2/relay", content=body, headers={"content-type": content_type, "origin": PUBLIC})
    assert resp.status_code == 400 and reason in resp.text


def test_the_confirmation_page_escapes_what_the_link_carried(client: TestClient) -> None:
    resp = relay(client, headers=None, state='"><script>alert(1)</script>', scope="openid <b>")
    assert resp.status_code == 200
    assert "<script>" not in resp.text and "<b>" not in resp.text
    import re
    from html import unescape

    (carried,) = re.findall(r'name="query" value="([^"]*)"', resp.text)
    assert parse_qs(unescape(carried))["state"] == ['"><script>alert(1)</script>']  # carried intact, escaped

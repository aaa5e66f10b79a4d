"""Gate mode (forward auth): start -> IdP -> master callback -> ticket -> host-only session."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from broker.loginstate import derive, s256
from tests.support.brokerunit import PR1, PR2, PUBLIC
from tests.support.fakeidp import (
    CLIENT_ID,
    CLIENT_SECRET,
    FakeIdP,
    basic_auth_of,
    form_of,
)
from tests.support.flows import (
    assert_clears,
    broker_start,
    callback,
    forward_auth,
    gate_login,
    preview_cookies,
    query_of,
    session_cookie,
    start_gate,
)

DEEP = f"https://{PR1}/deep/link?x=1&y=%2F#frag"


def login_session(client: TestClient, idp: FakeIdP, rd: str = DEEP) -> str:
    ticket_url = gate_login(client, idp, rd)
    resp = forward_auth(client, ticket_url)
    assert resp.status_code == 302, resp.text
    cookie, _ = session_cookie(resp)
    return cookie


def test_start_redirects_to_idp_with_master_callback_and_pkce(client: TestClient, idp: FakeIdP) -> None:
    params = start_gate(client, idp, DEEP)
    assert params["redirect_uri"] == f"{PUBLIC}/oauth2/callback"
    assert params["client_id"] == CLIENT_ID
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["scope"] == "openid email profile groups"
    assert params["nonce"]


def test_bind_cookie_is_host_only_secure_httponly(client: TestClient, idp: FakeIdP) -> None:
    resp = broker_start(client, DEEP)
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith("__Host-pb_bind=")
    assert "Domain" not in cookie and "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_token_request_is_exact(client: TestClient, idp: FakeIdP) -> None:
    params = start_gate(client, idp, DEEP)
    callback(client, code="the-code", state=params["state"])
    (request,) = idp.token_requests
    form = form_of(request)
    bind = client.cookies.get("__Host-pb_bind")
    assert form["grant_type"] == "authorization_code"
    assert form["code"] == "the-code"
    assert form["redirect_uri"] == f"{PUBLIC}/oauth2/callback"
    assert s256(form["code_verifier"]) == params["code_challenge"]
    assert basic_auth_of(request) == (CLIENT_ID, CLIENT_SECRET)
    assert "client_secret" not in form
    assert bind and form["code_verifier"] != bind


def test_callback_sends_browser_to_ticket_on_preview_host(client: TestClient, idp: FakeIdP) -> None:
    location = gate_login(client, idp, DEEP)
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", PR1, "/oauth2/ticket")
    assert set(query_of(location)) == {"ticket"}


def test_ticket_via_forward_auth_sets_host_only_session_and_returns_to_deep_link(
    client: TestClient, idp: FakeIdP
) -> None:
    resp = forward_auth(client, gate_login(client, idp, DEEP))
    assert resp.status_code == 302
    assert resp.headers["location"] == DEEP
    _, parsed = session_cookie(resp)
    morsel = parsed["__Host-pb_session"]
    assert morsel["domain"] == "" and morsel["secure"] and morsel["httponly"] and morsel["path"] == "/"
    assert morsel["samesite"].lower() == "lax"


def test_ticket_via_nginx_style_direct_route(client: TestClient, idp: FakeIdP) -> None:
    ticket_url = gate_login(client, idp, DEEP)
    client.cookies.clear()  # the browser sends the preview host its own cookies
    resp = client.get(ticket_url, headers={"cookie": preview_cookies(client, PR1)})  # /oauth2/ routed to the broker
    assert resp.status_code == 302 and resp.headers["location"] == DEEP
    assert resp.headers["set-cookie"].startswith("__Host-pb_session=")


def test_session_opens_the_deep_link_with_identity_headers(make_client, idp: FakeIdP) -> None:
    client = make_client(header_groups=["eng"])
    cookie = login_session(client, idp)
    resp = forward_auth(client, DEEP, cookie)
    assert resp.status_code == 202
    assert resp.headers["x-auth-request-user"] == "ada"
    assert resp.headers["x-auth-request-email"] == "ada@example.com"
    assert resp.headers["x-auth-request-groups"] == "eng"


def test_groups_no_rule_and_no_header_groups_name_stay_at_the_idp(client: TestClient, idp: FakeIdP) -> None:
    resp = forward_auth(client, DEEP, login_session(client, idp))
    assert resp.status_code == 202
    assert "x-auth-request-groups" not in resp.headers


def test_nginx_auth_url_with_x_original_url(nginx_client: TestClient, idp: FakeIdP) -> None:
    ticket_url = gate_login(nginx_client, idp, DEEP)
    redeemed = forward_auth(nginx_client, ticket_url, nginx=True)
    assert redeemed.status_code == 302
    cookie, _ = session_cookie(redeemed)
    assert forward_auth(nginx_client, DEEP, cookie, nginx=True).status_code == 202
    assert forward_auth(nginx_client, DEEP, None, nginx=True).status_code == 401


def test_cookie_from_pr1_does_not_open_pr2(client: TestClient, nginx_client: TestClient, idp: FakeIdP) -> None:
    cookie = login_session(client, idp)  # both brokers share keys: a cookie from one is valid at the other
    assert forward_auth(client, f"https://{PR2}/", cookie).status_code == 401
    assert forward_auth(nginx_client, f"https://{PR2}/", cookie, nginx=True).status_code == 401


def test_ticket_for_pr1_is_refused_on_pr2(client: TestClient, idp: FakeIdP) -> None:
    ticket = query_of(gate_login(client, idp, DEEP))["ticket"]
    resp = forward_auth(client, f"https://{PR2}/oauth2/ticket?ticket={ticket}")
    assert resp.status_code == 400
    assert "set-cookie" not in resp.headers


def test_ticket_is_single_use(client: TestClient, idp: FakeIdP) -> None:
    ticket_url = gate_login(client, idp, DEEP)
    assert forward_auth(client, ticket_url).status_code == 302
    again = forward_auth(client, ticket_url)
    assert again.status_code == 400 and "set-cookie" not in again.headers


def test_ticket_expires(client: TestClient, idp: FakeIdP, clock) -> None:
    ticket_url = gate_login(client, idp, DEEP)
    clock.advance(61)
    assert forward_auth(client, ticket_url).status_code == 400


def test_session_expires(client: TestClient, idp: FakeIdP, clock, settings) -> None:
    cookie = login_session(client, idp)
    clock.advance(settings.session_ttl + 1)
    assert forward_auth(client, DEEP, cookie).status_code == 401


def test_no_session_is_401_and_redirect_mode_sends_browsers_to_login(client: TestClient, idp: FakeIdP) -> None:
    assert forward_auth(client, DEEP).status_code == 401
    resp = forward_auth(client, DEEP, accept="text/html", query="?redirect=true")
    assert resp.status_code == 302
    assert resp.headers["location"].startswith(f"{PUBLIC}/oauth2/start?rd=")
    assert query_of(resp.headers["location"])["rd"] == f"https://{PR1}/deep/link?x=1&y=%2F"
    # API calls (no HTML wanted) still get 401 in redirect mode.
    assert forward_auth(client, DEEP, query="?redirect=true").status_code == 401


def test_deleted_environment_is_403_even_with_a_valid_session(client: TestClient, idp: FakeIdP, allowlist) -> None:
    cookie = login_session(client, idp)
    allowlist.discard(PR1)
    assert forward_auth(client, DEEP, cookie).status_code == 403


def test_environment_deleted_while_at_idp_gets_error_page_not_redirect(
    client: TestClient, idp: FakeIdP, allowlist
) -> None:
    params = start_gate(client, idp, DEEP)
    allowlist.discard(PR1)
    resp = callback(client, code="c", state=params["state"])
    assert resp.status_code == 410
    assert "location" not in resp.headers
    assert "no longer exists" in resp.text
    assert idp.token_requests == []  # nothing exchanged for a dead target


def test_tampered_state_is_400(client: TestClient, idp: FakeIdP) -> None:
    state = start_gate(client, idp, DEEP)["state"]
    tampered = state[:-2] + ("A" if state[-2] != "A" else "B") + state[-1]
    resp = callback(client, code="c", state=tampered)
    assert resp.status_code == 400 and "location" not in resp.headers


def test_replayed_state_is_400(client: TestClient, idp: FakeIdP) -> None:
    state = start_gate(client, idp, DEEP)["state"]
    assert callback(client, code="c", state=state).status_code == 302
    resp = callback(client, code="c", state=state)
    assert resp.status_code == 400 and "already used" in resp.text


def test_expired_state_is_400(client: TestClient, idp: FakeIdP, clock, settings) -> None:
    state = start_gate(client, idp, DEEP)["state"]
    clock.advance(settings.state_ttl + 1)
    assert callback(client, code="c", state=state).status_code == 400


def test_state_from_another_browser_is_400(client: TestClient, idp: FakeIdP) -> None:
    state = start_gate(client, idp, DEEP)["state"]
    client.cookies.clear()
    resp = callback(client, code="c", state=state)
    assert resp.status_code == 400 and "another browser" in resp.text


def test_two_logins_in_parallel_tabs_both_complete(client: TestClient, idp: FakeIdP) -> None:
    s1 = start_gate(client, idp, DEEP)
    s2 = start_gate(client, idp, f"https://{PR2}/other")
    assert callback(client, code="c2", state=s2["state"]).status_code == 302
    idp.nonce = s1["nonce"]
    assert callback(client, code="c1", state=s1["state"]).status_code == 302


def test_id_token_with_wrong_nonce_is_refused(client: TestClient, idp: FakeIdP) -> None:
    params = start_gate(client, idp, DEEP)
    idp.id_token_overrides = {"nonce": "not-the-nonce"}
    resp = callback(client, code="c", state=params["state"])
    assert resp.status_code == 400 and "location" not in resp.headers


@pytest.mark.parametrize(
    "override",
    [{"iss": "https://other-idp.example.org"}, {"aud": "another-client"}, {"exp": 1000}, {"sub": None}],
    ids=["issuer", "audience", "expired", "no-subject"],
)
def test_id_token_claims_are_checked(client: TestClient, idp: FakeIdP, override) -> None:
    params = start_gate(client, idp, DEEP)
    idp.id_token_overrides = override
    assert callback(client, code="c", state=params["state"]).status_code == 400


def test_id_token_signed_by_another_key_is_refused(client: TestClient, idp: FakeIdP) -> None:
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    params = start_gate(client, idp, DEEP)
    other = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    forged = jwt.encode({"alg": "RS256", "kid": "k1"}, {"iss": "x"}, other)
    idp.token_route.mock(
        side_effect=lambda r: httpx.Response(200, json={"access_token": "a", "id_token": forged})
    )
    assert callback(client, code="c", state=params["state"]).status_code == 400


def test_authenticated_but_not_allowed_is_403_page(client: TestClient, idp: FakeIdP) -> None:
    idp.claims["email"] = "mallory@elsewhere.org"
    params = start_gate(client, idp, DEEP)
    resp = callback(client, code="c", state=params["state"])
    assert resp.status_code == 403
    assert "not allowed" in resp.text and "ada" in resp.text


def test_unverified_email_is_403(client: TestClient, idp: FakeIdP) -> None:
    idp.claims["email_verified"] = False
    params = start_gate(client, idp, DEEP)
    assert callback(client, code="c", state=params["state"]).status_code == 403


def test_idp_error_parameter_in_gate_mode_is_403_page(client: TestClient, idp: FakeIdP) -> None:
    params = start_gate(client, idp, DEEP)
    resp = callback(client, error="access_denied", state=params["state"])
    assert resp.status_code == 403 and "access_denied" in resp.text


@pytest.mark.parametrize(
    ("side_effect", "status"),
    [(httpx.ConnectError("refused"), 502), (httpx.ReadTimeout("slow"), 504), (None, 502)],
    ids=["down", "slow", "5xx"],
)
def test_idp_failures_at_token_exchange(client: TestClient, idp: FakeIdP, side_effect, status) -> None:
    params = start_gate(client, idp, DEEP)
    if side_effect is None:
        idp.token_route.mock(return_value=httpx.Response(503, text="down for maintenance"))
    else:
        idp.token_route.mock(side_effect=side_effect)
    resp = callback(client, code="c", state=params["state"])
    assert resp.status_code == status
    assert "Traceback" not in resp.text


def test_invalid_grant_is_400_with_retry_hint(client: TestClient, idp: FakeIdP) -> None:
    params = start_gate(client, idp, DEEP)
    idp.token_route.mock(return_value=httpx.Response(400, json={"error": "invalid_grant"}))
    resp = callback(client, code="c", state=params["state"])
    assert resp.status_code == 400 and "invalid_grant" in resp.text


def test_discovery_down_at_start_is_502(client: TestClient, idp: FakeIdP) -> None:
    idp.router.get("https://idp.example.org/.well-known/openid-configuration").mock(
        side_effect=httpx.ConnectError("down")
    )
    resp = broker_start(client, DEEP)
    assert resp.status_code == 502 and "location" not in resp.headers


def test_start_on_preview_host_resolves_relative_rd_there(client: TestClient, idp: FakeIdP) -> None:
    resp = client.get(f"https://{PR1}/oauth2/start", params={"rd": "/deep/link?x=1"})
    assert resp.status_code == 302
    assert query_of(resp.headers["location"])["rd"] == f"https://{PR1}/deep/link?x=1"
    assert resp.headers["location"].startswith(f"{PUBLIC}/oauth2/start?")


def test_start_on_preview_host_refuses_rd_for_another_preview(client: TestClient, idp: FakeIdP) -> None:
    resp = client.get(f"https://{PR1}/oauth2/start", params={"rd": f"https://{PR2}/"})
    assert resp.status_code == 400


def test_sign_out_via_forward_auth_clears_cookie_and_redirects_on_same_host(client: TestClient, idp: FakeIdP) -> None:
    cookie = login_session(client, idp)
    resp = forward_auth(client, f"https://{PR1}/oauth2/sign_out?rd=/bye", cookie, method="POST",
                        extra={"origin": f"https://{PR1}"})
    assert resp.status_code == 303 and resp.headers["location"] == f"https://{PR1}/bye"
    cleared = resp.headers["set-cookie"]
    assert cleared.startswith("__Host-pb_session=") and "Max-Age=0" in cleared


def test_sign_out_refuses_foreign_rd(client: TestClient, idp: FakeIdP) -> None:
    resp = client.get(f"https://{PR1}/oauth2/sign_out", params={"rd": "https://evil.com/"})
    assert resp.status_code == 400 and "location" not in resp.headers


def test_userinfo_on_preview_host(make_client, idp: FakeIdP) -> None:
    client = make_client(header_groups=["eng"])  # userinfo shows the groups the session carries
    cookie = login_session(client, idp)
    name, value = cookie.split("=", 1)
    client.cookies.clear()
    resp = client.get(f"https://{PR1}/oauth2/userinfo", headers={"cookie": cookie})
    assert resp.status_code == 200
    assert resp.json() == {"user": "ada", "email": "ada@example.com", "groups": ["eng"], "host": PR1}
    assert client.get(f"https://{PR2}/oauth2/userinfo", headers={"cookie": cookie}).status_code == 401


def test_group_policy_rechecked_on_every_auth(idp: FakeIdP, allowlist, clock) -> None:
    from broker.app import create_app
    from tests.support.brokerunit import make_settings

    settings = make_settings(allowed_email_domains=[], allowed_groups=["eng"])
    with TestClient(create_app(settings, allowlist=allowlist, clock=clock), base_url=PUBLIC, follow_redirects=False) as c:
        cookie = login_session(c, idp)
        assert forward_auth(c, DEEP, cookie).status_code == 202
    stricter = make_settings(allowed_email_domains=[], allowed_groups=["admins"])
    with TestClient(create_app(stricter, allowlist=allowlist, clock=clock), base_url=PUBLIC, follow_redirects=False) as c:
        assert forward_auth(c, DEEP, cookie).status_code == 403


def test_pkce_verifier_is_derived_from_the_bind_cookie() -> None:
    assert derive("pkce", "a" * 43, "j1") != derive("pkce", "b" * 43, "j1")
    assert derive("pkce", "a" * 43, "j1") != derive("nonce", "a" * 43, "j1")
    assert len(derive("pkce", "a" * 43, "j1")) == 43


def test_a_verified_session_still_expires_and_stays_host_bound(client: TestClient, idp: FakeIdP, clock, settings) -> None:
    cookie = login_session(client, idp)
    assert forward_auth(client, DEEP, cookie).status_code == 202  # verified once, now remembered
    assert forward_auth(client, f"https://{PR2}/", cookie).status_code == 401  # remembered, still host-bound
    clock.advance(settings.session_ttl + 1)
    assert forward_auth(client, DEEP, cookie).status_code == 401
    clock.advance(-(settings.session_ttl + 3600))  # a clock going back makes the token "from the future"
    assert forward_auth(client, DEEP, cookie).status_code == 401


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("__Host-pb_session=abc", "abc"),
        ("a=1; __Host-pb_session=abc.def; b=2", "abc.def"),
        ('__Host-pb_session="q.v"', "q.v"),
        ("x__Host-pb_session=evil; y=1", None),
        ("__Host-pb_session_other=evil", None),
        ("", None),
        ("__Host-pb_session", None),
    ],
)
def test_cookie_value(header, value) -> None:
    from broker.cookies import cookie_value

    assert cookie_value(header, "__Host-pb_session") == value


def test_a_changed_authorization_endpoint_is_followed(client: TestClient, idp: FakeIdP) -> None:
    """Gate mode's fixed parameters are encoded once per endpoint, not once per process."""
    broker = client.app.broker
    first = broker_start(client, DEEP).headers["location"]
    original = broker.provider.authorization_endpoint

    async def moved() -> str:
        return "https://login.example.org/v2/authorize"

    broker.provider.authorization_endpoint = moved
    try:
        second = broker_start(client, DEEP).headers["location"]
    finally:
        broker.provider.authorization_endpoint = original
    assert not first.startswith("https://login.example.org/")
    assert second.startswith("https://login.example.org/v2/authorize?response_type=code&")
    assert f"redirect_uri={quote(PUBLIC + '/oauth2/callback', safe='')}" in second


def test_sign_out_on_the_broker_host_clears_the_bind_cookie_as_it_was_set(client: TestClient) -> None:
    started = broker_start(client, f"https://{PR1}/")
    _, issued = session_cookie(started)
    asked = client.get("/oauth2/sign_out")
    assert asked.status_code == 200 and "set-cookie" not in asked.headers and 'method="post"' in asked.text
    resp = client.post("/oauth2/sign_out", headers={"origin": PUBLIC})
    assert resp.status_code == 200
    _, cleared = session_cookie(resp)
    (name,) = issued.keys()
    assert list(cleared.keys()) == [name] and name.startswith("__Host-")
    assert_clears(cleared[name], issued[name])

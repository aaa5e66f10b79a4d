"""The findings of the adversarial review, each replayed as the attacker did it (unit level).

Threat model (docs/security.md): whoever opens a pull request controls a preview app, its
pages' scripts, every header that reaches it (including its own host's cookies), and can
send links to colleagues.  Run against the pre-fix tree (f18412d, with today's test support),
the tests of findings 1-4, 8, 9 and 12 fail with the finding's own symptom (a 302 to the IdP
for the relayed gate client, 200 as the victim for a spoofed X-Original-URL, a ticket redeemed
in another browser or replica, a 500, a session over plain http, a sign-out any page could
trigger); the flood test of finding 5 needs helpers the old tree lacks.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from broker.app import create_app
from tests.support.brokerunit import PR1, PR2, PUBLIC, make_settings
from tests.support.fakeidp import CLIENT_ID, FakeIdP
from tests.support.flows import (
    callback,
    forward_auth,
    gate_login,
    preview_cookies,
    query_of,
    session_cookie,
    start_gate,
)

DEEP = f"https://{PR1}/deep"


def _app(allowlist, clock, **settings):
    return TestClient(create_app(make_settings(**settings), allowlist=allowlist, clock=clock), base_url=PUBLIC,
                      follow_redirects=False)


def _session(client: TestClient, idp: FakeIdP, rd: str = DEEP) -> str:
    cookie, _ = session_cookie(forward_auth(client, gate_login(client, idp, rd)))
    return cookie


# 1. Account takeover by code injection ---------------------------------------------------------

@pytest.mark.parametrize("relay_clients", [[], ["pr-app"]], ids=["defaults", "relay-on"])
def test_the_gate_client_cannot_be_relayed_to_steal_a_code_for_the_attackers_gate_login(
        idp: FakeIdP, allowlist, clock, relay_clients) -> None:
    with _app(allowlist, clock, relay_client_ids=relay_clients) as attacker, _app(
            allowlist, clock, relay_client_ids=relay_clients) as victim:
        mine = start_gate(attacker, idp, DEEP)  # the attacker's own gate login: his challenge and nonce
        link = "/oauth2/relay?" + urlencode({
            "return_to": f"https://{PR2}/collect", "client_id": CLIENT_ID, "response_type": "code",
            "code_challenge": mine["code_challenge"], "code_challenge_method": "S256", "nonce": mine["nonce"],
            "scope": "openid email", "state": "x"})
        resp = victim.get(link, headers={"referer": f"https://{PR2}/"})
        assert resp.status_code == 400 and "relay_unknown_client" in resp.text
        assert "location" not in resp.headers  # the victim never reaches the IdP with that challenge


# 2. Host binding bypassed through a client-sent X-Original-URL -------------------------------------

# What a client may add to its request to pr-1 (Traefik passes these through), hoping the broker
# judges another preview: every one must be ignored by a broker behind Traefik.
SPOOFED = [
    {"x-original-url": f"https://{PR2}/"},
    {"x-original-url": f"https://{PR2}/", "x-original-method": "GET"},
    {"x-forwarded-server": PR2},
    {"forwarded": f"host={PR2};proto=https"},
    {"x-original-host": PR2},
    {"x-host": PR2},
    {"host": PR2},
]


@pytest.mark.parametrize("spoofed", SPOOFED)
def test_behind_traefik_a_client_sent_header_never_moves_the_check_to_another_preview(
        client: TestClient, idp: FakeIdP, spoofed) -> None:
    pr2_cookie = _session(client, idp, f"https://{PR2}/")  # a victim's pr-2 cookie, seen by pr-2's app
    resp = forward_auth(client, f"https://{PR1}/secret", pr2_cookie, extra=spoofed)
    assert resp.status_code == 401, spoofed


@pytest.mark.parametrize("spoofed", [{"x-forwarded-host": PR2, "x-forwarded-uri": "/", "x-forwarded-proto": "https"},
                                     {"x-forwarded-host": PR2}])
def test_behind_nginx_client_sent_forwarded_headers_are_ignored(nginx_client: TestClient, idp: FakeIdP,
                                                                spoofed) -> None:
    pr2_cookie = _session(nginx_client, idp, f"https://{PR2}/")
    resp = forward_auth(nginx_client, f"https://{PR1}/secret", pr2_cookie, extra=spoofed)
    assert resp.status_code == 401


# 3. Login CSRF: the attacker's own ticket, opened by a victim ----------------------------------------

def test_an_attackers_ticket_signs_nobody_in_in_another_browser(idp: FakeIdP, allowlist, clock) -> None:
    with _app(allowlist, clock) as attacker, _app(allowlist, clock) as victim:
        idp.claims.update({"email": "mallory@example.com", "preferred_username": "mallory"})
        ticket_url = gate_login(attacker, idp, DEEP)  # not redeemed: sent to the victim as a link
        idp.claims.update({"email": "ada@example.com", "preferred_username": "ada"})
        own = _session(victim, idp)  # the victim is signed in already
        resp = forward_auth(victim, ticket_url, own)
        assert resp.status_code == 400 and "ticket_browser_mismatch" in resp.text
        assert "set-cookie" not in resp.headers  # the victim's own session is left alone
        assert forward_auth(victim, DEEP, own).headers["x-auth-request-user"] == "ada"


def test_a_ticket_needs_the_login_cookie_of_its_own_login_not_just_any(client: TestClient, idp: FakeIdP) -> None:
    first = gate_login(client, idp, DEEP)
    jar = client.preview_jar[PR1]  # type: ignore[attr-defined]
    (name,) = jar
    jar[name] = "A" * 43  # another login's cookie (well-formed, wrong)
    resp = forward_auth(client, first)
    assert resp.status_code == 400 and "ticket_browser_mismatch" in resp.text


def test_a_ticket_without_any_login_cookie_is_refused(client: TestClient, idp: FakeIdP) -> None:
    ticket_url = gate_login(client, idp, DEEP)
    client.preview_jar.clear()  # type: ignore[attr-defined]
    resp = forward_auth(client, ticket_url)
    assert resp.status_code == 400 and "set-cookie" not in resp.headers


# 4. Replay across replicas ---------------------------------------------------------------------------

def test_a_third_party_gains_nothing_from_a_ticket_or_state_on_any_replica(idp: FakeIdP, allowlist, clock) -> None:
    """Two replicas share keys but no memory: the browser binding, not the memory, stops a thief."""
    with _app(allowlist, clock) as replica_a, _app(allowlist, clock) as replica_b, \
            _app(allowlist, clock) as thief_on_a, _app(allowlist, clock) as thief_on_b:
        params = start_gate(replica_a, idp, DEEP)
        for thief in (thief_on_a, thief_on_b):  # a stolen state: no bind cookie, no use
            resp = callback(thief, code="stolen", state=params["state"])
            assert resp.status_code == 400 and "state_browser_mismatch" in resp.text
        ticket_url = callback(replica_a, code="c", state=params["state"]).headers["location"]
        for thief in (thief_on_a, thief_on_b):  # a stolen ticket: no login cookie, no session
            resp = forward_auth(thief, ticket_url)
            assert resp.status_code == 400 and "set-cookie" not in resp.headers
        # the victim's browser, load-balanced to the other replica, still completes once
        replica_b.preview_jar = replica_a.preview_jar  # type: ignore[attr-defined]
        assert forward_auth(replica_b, ticket_url).status_code == 302


# 5. Lock-out: anonymous floods cannot fill what honest logins need -----------------------------------

def test_a_flood_of_junk_callbacks_and_relay_starts_never_locks_out_honest_logins(
        idp: FakeIdP, allowlist, clock, monkeypatch) -> None:
    import broker.core

    small = broker.core.ReplayGuard

    monkeypatch.setattr(broker.core, "ReplayGuard", lambda clock: small(clock, max_entries=50))
    with _app(allowlist, clock, relay_client_ids=["pr-app"]) as attacker, _app(
            allowlist, clock, relay_client_ids=["pr-app"]) as honest:
        honest.app.broker.gate_guard = attacker.app.broker.gate_guard  # one replica's memory, shared
        honest.app.broker.relay_guard = attacker.app.broker.relay_guard
        relay = {"return_to": f"https://{PR2}/cb", "client_id": "pr-app", "response_type": "code"}
        for i in range(200):  # four times what the memory holds
            started = attacker.get("/oauth2/relay?" + urlencode({**relay, "state": str(i)}),
                                   headers={"referer": f"https://{PR2}/"})
            state = query_of(started.headers["location"])["state"]
            assert callback(attacker, code="junk", state=state).status_code == 302
            assert callback(attacker, code="junk", state="junk.state.sig").status_code == 400
        assert len(attacker.app.broker.gate_guard) == 0  # anonymous traffic added nothing here
        assert len(attacker.app.broker.relay_guard) == 50  # and only evicted its own kind there
        cookie = _session(honest, idp)
        assert forward_auth(honest, DEEP, cookie).status_code == 202
        started = honest.get("/oauth2/relay?" + urlencode({**relay, "state": "honest"}),
                             headers={"referer": f"https://{PR2}/"})
        back = callback(honest, code="c", state=query_of(started.headers["location"])["state"])
        assert back.status_code == 302 and query_of(back.headers["location"])["state"] == "honest"


# 9. Plain http without ALLOW_HTTP: never a non-Secure session -----------------------------------------

def test_forward_auth_over_plain_http_sets_and_accepts_no_session(client: TestClient, idp: FakeIdP) -> None:
    secure = _session(client, idp)
    value = secure.split("=", 1)[1]
    for cookie in (f"pb_session={value}", secure):
        resp = forward_auth(client, f"http://{PR1}/deep", cookie)
        assert resp.status_code == 403 and "https_required" in resp.text and "set-cookie" not in resp.headers
    # and a non-prefixed cookie is never read over https either
    assert forward_auth(client, DEEP, f"pb_session={value}").status_code == 401


def test_a_non_prefixed_session_cookie_is_never_read_over_plain_http(client: TestClient, idp: FakeIdP) -> None:
    value = _session(client, idp).split("=", 1)[1]
    client.cookies.clear()
    resp = client.get(f"http://{PR1}/oauth2/userinfo", headers={"cookie": f"pb_session={value}"})
    assert resp.status_code == 401


@pytest.mark.parametrize("path", ["/oauth2/ticket?ticket=x", "/oauth2/start?rd=/", "/"])
def test_no_login_step_runs_over_plain_http(client: TestClient, path: str) -> None:
    resp = forward_auth(client, f"http://{PR1}{path}", accept="text/html", query="?redirect=true")
    assert resp.status_code == 403 and "set-cookie" not in resp.headers and "location" not in resp.headers


def test_a_direct_ticket_route_over_plain_http_is_refused(client: TestClient, idp: FakeIdP) -> None:
    ticket_url = gate_login(client, idp, DEEP).replace("https://", "http://")
    client.cookies.clear()
    resp = client.get(ticket_url, headers={"cookie": preview_cookies(client, PR1), "x-forwarded-proto": "http"})
    assert resp.status_code == 400 and "https_required" in resp.text and "set-cookie" not in resp.headers


# 8. Never a 500 for what a client sends -------------------------------------------------------------------

@pytest.mark.parametrize("url", ["https://[pr-1/", "https://[::1", "http://[", "https://pr-1.preview.example.com:99999/"])
def test_a_malformed_x_original_url_is_a_400(nginx_client: TestClient, url: str, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        resp = nginx_client.get("/oauth2/auth", headers={"x-original-url": url})
    assert resp.status_code == 400 and not [r for r in caplog.records if r.message == "internal_error"]


# 12. Sign-out changes state only by POST from the preview itself or the broker -------------------------------

def test_a_get_sign_out_via_forward_auth_only_asks(client: TestClient, idp: FakeIdP) -> None:
    cookie = _session(client, idp)
    resp = forward_auth(client, f"https://{PR1}/oauth2/sign_out?rd=/bye", cookie, accept="text/html")
    assert resp.status_code == 302 and "set-cookie" not in resp.headers
    assert resp.headers["location"] == f"{PUBLIC}/oauth2/sign_out?" + urlencode({"rd": f"https://{PR1}/bye"})
    page = client.get(resp.headers["location"])
    assert page.status_code == 200 and f'action="https://{PR1}/oauth2/sign_out?rd=%2Fbye"' in page.text
    assert forward_auth(client, DEEP, cookie).status_code == 202  # still signed in


@pytest.mark.parametrize(("origin", "fetch_site", "status"), [
    (f"https://{PR2}", None, 403),  # another preview's page posts a form
    ("https://evil.com", None, 403),
    ("null", None, 403),
    (None, "same-site", 403),  # every preview is same-site with every other
    (None, "cross-site", 403),
    (f"https://{PR1}", None, 303),  # the preview's own page
    (PUBLIC, None, 303),  # the broker's sign-out page
    (None, "same-origin", 303),
    (None, None, 303),  # not a browser: no one to forge it for
])
def test_a_sign_out_post_is_honoured_only_from_the_preview_or_the_broker(client: TestClient, idp: FakeIdP,
                                                                         origin, fetch_site, status) -> None:
    cookie = _session(client, idp)
    extra = {k: v for k, v in (("origin", origin), ("sec-fetch-site", fetch_site)) if v is not None}
    resp = forward_auth(client, f"https://{PR1}/oauth2/sign_out", cookie, method="POST", extra=extra)
    assert resp.status_code == status
    assert ("set-cookie" in resp.headers) == (status == 303)


@pytest.mark.parametrize(("origin", "status"), [(f"https://{PR1}", 403), (PUBLIC, 200), (None, 200)])
def test_a_broker_host_sign_out_post_needs_the_brokers_own_page(client: TestClient, origin, status) -> None:
    resp = client.post("/oauth2/sign_out", headers={"origin": origin} if origin else {})
    assert resp.status_code == status

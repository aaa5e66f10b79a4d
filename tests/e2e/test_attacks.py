"""The adversarial review's findings 1-5, replayed end to end by an attacker who owns a preview.

The stack runs as deployed: https, two broker replicas behind Traefik's load balancer, the
real Dex, the real Chromium.  The attacker (mallory) controls pr-666's app, which records
every request that reaches it, cookies included; the victim (admin) uses her own browser.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from tests.support.dex import APP_CLIENT_ID, ATTACKER_EMAIL, DEX_CLIENT_ID
from tests.support.e2eflows import DEEP, cookie, dex_login, gate_login, login_until
from tests.support.stack import ATTACKER, DOMAIN, Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def attacker(browser):
    """Mallory's own browser (a separate profile: no cookie is shared with the victim's)."""
    context = browser.new_context()
    yield context.new_page()
    context.close()


def _replica_logs(stack: Stack) -> str:
    return "".join(stack.procs[name].log_path.read_text() for name in ("broker", "broker-2"))


def _codes_seen_by_the_attacker(stack: Stack) -> list[str]:
    return [r["query"] for r in stack.recorded(ATTACKER) if "code=" in r["query"]]


# 1. Account takeover by code injection ------------------------------------------------------------------

def test_a_relay_link_for_the_gate_client_never_reaches_the_idp(page, attacker, stack: Stack) -> None:
    # Mallory starts her own gate login and stops at the IdP: she keeps its challenge and nonce.
    mine = login_until(attacker, stack, stack.url("pr-1", "/"), f"{stack.dex.issuer}/auth?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(mine).query).items()}
    link = f"{stack.broker_url}/oauth2/relay?" + urlencode({
        "return_to": stack.url(ATTACKER, "/collect"), "client_id": DEX_CLIENT_ID, "response_type": "code",
        "scope": params["scope"], "code_challenge": params["code_challenge"], "code_challenge_method": "S256",
        "nonce": params["nonce"], "state": "x"})
    # The victim opens it, from mallory's own preview page (so a Referer says "started there").
    page.goto(stack.url(ATTACKER, "/__page?html=" + quote(f'<a id="go" href="{link}">open</a>')))
    gate_login(page, stack, ATTACKER, "/__page?html=" + quote(f'<a id="go" href="{link}">open</a>'))
    page.click("#go")
    assert page.url.startswith(f"{stack.broker_url}/oauth2/relay")
    assert "relay_unknown_client" in page.text_content("body")
    assert _codes_seen_by_the_attacker(stack) == []


def test_a_relay_link_to_the_attackers_preview_is_confirmed_by_the_victim_first(page, stack: Stack) -> None:
    link = f"{stack.broker_url}/oauth2/relay?" + urlencode({
        "return_to": stack.url(ATTACKER, "/collect"), "client_id": APP_CLIENT_ID, "response_type": "code",
        "scope": "openid email", "state": "x"})
    page.goto(link)  # sent in a chat: no Referer from pr-666
    assert page.text_content(".host") == f"{ATTACKER}.{DOMAIN}"
    assert page.get_by_role("button", name="Continue to sign in").count() == 1
    assert _codes_seen_by_the_attacker(stack) == []  # nothing reaches the IdP, nor pr-666, unconfirmed


# 2. Host binding through Traefik ----------------------------------------------------------------------

@pytest.mark.parametrize("target", ["pr-1", "pr-3"])
def test_a_victims_cookie_from_the_attackers_preview_opens_no_other_preview(page, stack: Stack,
                                                                             target: str) -> None:
    gate_login(page, stack, ATTACKER, "/hello")  # the victim visits mallory's preview, signed in
    seen = [r for r in stack.recorded(ATTACKER) if "__Host-pb_session=" in r["headers"].get("cookie", "")]
    stolen = re.search(r"__Host-pb_session=([^;]+)", seen[-1]["headers"]["cookie"]).group(1)  # type: ignore[union-attr]
    forged = {"cookie": f"__Host-pb_session={stolen}", "accept": "text/html",
              "x-original-url": stack.url(ATTACKER, "/"), "x-original-method": "GET",
              "x-forwarded-host": f"{ATTACKER}.{DOMAIN}", "x-forwarded-proto": "https",
              "x-forwarded-uri": "/", "forwarded": f"host={ATTACKER}.{DOMAIN};proto=https"}
    with stack.client() as c:
        resp = c.get(stack.url(target, "/secret"), headers=forged)
        assert resp.status_code in (302, 401), resp.text[:300]
        assert "Signed in as" not in resp.text
        if resp.status_code == 302:  # sent to log in at pr-x, not let in
            assert resp.headers["location"].startswith((f"{stack.broker_url}/oauth2/start",
                                                        stack.url(target, "/oauth2/start")))
        # ... while the same cookie does open mallory's own preview, where it belongs
        own = c.get(stack.url(ATTACKER, "/hello"), headers={"cookie": f"__Host-pb_session={stolen}"})
        assert own.status_code == 200 and "admin" in own.text


# 3. Login CSRF ----------------------------------------------------------------------------------------

def test_the_attackers_own_ticket_signs_the_victim_in_as_nobody(page, attacker, stack: Stack) -> None:
    gate_login(page, stack, "pr-1")  # the victim is signed in already
    # Mallory logs in herself and keeps her ticket, unredeemed, to send it to the victim.
    ticket_url = login_until(attacker, stack, stack.url("pr-1", "/"), stack.url("pr-1", "/oauth2/ticket?"),
                             ATTACKER_EMAIL)
    resp = page.goto(ticket_url)
    assert resp is not None and resp.status == 400
    assert "another browser" in page.text_content("body")
    page.goto(stack.url("pr-1", DEEP))
    assert page.text_content("#user") == "admin"  # still herself, not mallory


# 4. Replay across replicas ----------------------------------------------------------------------------

def test_a_stolen_ticket_is_worthless_on_every_replica(page, attacker, stack: Stack) -> None:
    # The victim's own ticket, leaked before she used it.
    ticket_url = login_until(page, stack, stack.url("pr-1", DEEP), stack.url("pr-1", "/oauth2/ticket?"))
    before = _replica_logs(stack).count('"reason": "ticket_browser_mismatch"')
    for _ in range(4):  # Traefik round-robins the two replicas
        resp = attacker.goto(ticket_url)
        assert resp is not None and resp.status == 400
        assert cookie(attacker, stack.url("pr-1"), "__Host-pb_session") is None
    for name in ("broker", "broker-2"):  # both replicas refused it (their first refusal is logged)
        assert '"reason": "ticket_browser_mismatch"' in stack.procs[name].log_path.read_text(), name
    assert _replica_logs(stack).count('"reason": "ticket_browser_mismatch"') > before
    page.goto(ticket_url)  # the victim's browser still completes her login, once
    page.wait_for_url(stack.url("pr-1", DEEP))
    assert page.text_content("#user") == "admin"


# 5. Lock-out: an anonymous flood leaves honest logins working ------------------------------------------

def test_a_flood_of_relay_starts_and_junk_callbacks_locks_nobody_out(page, stack: Stack) -> None:
    relay = {"return_to": stack.url("pr-2", "/callback"), "client_id": APP_CLIENT_ID, "response_type": "code"}
    with stack.client() as c:
        for i in range(1_000):
            started = c.get(f"{stack.broker_url}/oauth2/relay?" + urlencode({**relay, "state": str(i)}),
                            headers={"referer": stack.url("pr-2", "/")})
            assert started.status_code == 302
            state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
            assert c.get(f"{stack.broker_url}/oauth2/callback",
                         params={"state": state, "code": "junk"}).status_code == 302
            assert c.get(f"{stack.broker_url}/oauth2/callback",
                         params={"state": "junk.AAAA.AAAA", "code": "junk"}).status_code == 400
    gate_login(page, stack, "pr-1")
    assert page.text_content("#user") == "admin"
    page.goto(stack.url("pr-2", "/"))
    page.click("#login")
    dex_login(page, stack) if page.url.startswith(stack.dex.issuer) else None
    page.wait_for_url(stack.url("pr-2", "/"))
    assert page.locator("#email").count() == 1
    logs = _replica_logs(stack)
    assert logs.count('"message": "refused"') < 100  # 2,000 refusals, a bounded number of lines


# 12. Sign-out CSRF from the attacker's page ------------------------------------------------------------

def test_the_attackers_page_cannot_sign_the_victim_out_of_another_preview(page, stack: Stack) -> None:
    gate_login(page, stack, "pr-1")
    form = (f'<form id="f" method="post" action="{stack.url("pr-1", "/oauth2/sign_out?rd=/")}"></form>'
            '<script>document.getElementById("f").submit()</script>')
    gate_login(page, stack, ATTACKER, "/__page?html=" + quote(form))  # the victim visits pr-666; its page posts
    page.wait_for_load_state()
    page.goto(stack.url("pr-1", DEEP))
    assert page.text_content("#user") == "admin"  # still signed in at pr-1

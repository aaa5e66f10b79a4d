"""A real browser logs into previews through Traefik and Dex over https, as users deploy it.

Production mode: every host is https with this run's CA, the two broker replicas run without
ALLOW_HTTP, and the cookies carry their production names and attributes.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.support.dex import DEX_USER_EMAIL
from tests.support.e2eflows import DEEP, cookie, dex_login, gate_login
from tests.support.procs import free_port
from tests.support.stack import DOMAIN, Preview, Stack, start_app

pytestmark = pytest.mark.e2e


def gate_round_trip(page, stack: Stack, namespace: str) -> None:
    gate_login(page, stack, namespace)
    assert page.text_content("#user") == "admin"
    assert page.text_content("#email") == DEX_USER_EMAIL
    assert page.text_content("#path") == DEEP


def test_gate_mode_deep_link_round_trip_through_traefik_forward_auth(page, stack: Stack) -> None:
    gate_round_trip(page, stack, "pr-1")


def test_gate_mode_through_nginx_annotations(page, stack: Stack) -> None:
    gate_round_trip(page, stack, "pr-3")


def test_cookies_have_their_production_names_and_attributes(page, stack: Stack) -> None:
    gate_login(page, stack, "pr-1")
    session = cookie(page, stack.url("pr-1"), "__Host-pb_session")
    assert session is not None, page.context.cookies()
    assert session["domain"] == f"pr-1.{DOMAIN}"  # host-only: no Domain attribute was sent
    assert session["path"] == "/" and session["secure"] and session["httpOnly"] and session["sameSite"] == "Lax"
    login = cookie(page, stack.url("pr-1"), "__Host-pb_login")
    assert login is not None and login["secure"] and login["httpOnly"] and login["domain"] == f"pr-1.{DOMAIN}"
    bind = cookie(page, stack.broker_url, "__Host-pb_bind")
    assert bind is not None and bind["secure"] and bind["httpOnly"] and bind["domain"] == f"auth.{DOMAIN}"
    names = {c["name"] for c in page.context.cookies()}
    assert not {"pb_session", "pb_bind", "pb_login"} & names  # no non-Secure name anywhere


def test_relay_mode_app_gets_code_and_state_and_exchanges_it(page, stack: Stack) -> None:
    page.goto(stack.url("pr-2", "/"))
    page.click("#login")  # started on the preview itself: straight to the IdP, no confirmation
    dex_login(page, stack)
    page.wait_for_url(stack.url("pr-2", "/"))
    assert page.text_content("#email") == DEX_USER_EMAIL


def test_a_relay_link_opened_from_elsewhere_is_confirmed_first(page, stack: Stack) -> None:
    with stack.client() as c:  # the app's relay link, as someone would paste it into a chat
        link = c.get(stack.url("pr-2", "/login")).headers["location"]
    assert link.startswith(f"{stack.broker_url}/oauth2/relay?")
    page.goto(link)  # typed or pasted: no Referer, so the broker asks first
    assert page.url.startswith(f"{stack.broker_url}/oauth2/relay")
    assert page.text_content(".host") == f"pr-2.{DOMAIN}"
    page.get_by_role("button", name="Continue to sign in").click()
    dex_login(page, stack)
    page.wait_for_url(stack.url("pr-2", "/callback") + "?*code=*")  # the code reached the app


def test_pr1_session_cookie_does_not_open_another_preview(page, stack: Stack) -> None:
    gate_login(page, stack, "pr-1", "/")
    session = cookie(page, stack.url("pr-1"), "__Host-pb_session")
    assert session is not None
    # __Host- cookies cannot be given another Domain: plant the value as pr-3's and pr-2's own cookie
    for other in ("pr-3", "pr-2"):
        page.context.add_cookies([{"name": "__Host-pb_session", "value": session["value"],
                                   "url": stack.url(other, "/"), "secure": True}])
    page.goto(stack.url("pr-3", "/secret"))
    page.wait_for_url(f"{stack.dex.issuer}/**")  # sent to log in, not let in
    page.goto(stack.url("pr-2", "/"))
    assert page.locator("#login").count() == 1  # the relay app does not know this user either


def test_the_same_deep_link_over_plain_http_never_yields_a_session(page, stack: Stack) -> None:
    gate_login(page, stack, "pr-1")  # signed in over https
    for ns in ("pr-1", "pr-3"):
        statuses: list[int] = []
        page.on("response", lambda r: statuses.append(r.status))
        resp = page.goto(stack.http_url(ns, DEEP))
        assert resp is not None and resp.status == 403 and "https only" in page.text_content("body")
        assert not page.url.startswith(stack.dex.issuer)
        for c in page.context.cookies(stack.http_url(ns)):
            assert c["secure"], c  # nothing non-Secure was ever set for the plain-http origin
        assert not [c for c in page.context.cookies() if c["name"] in ("pb_session", "pb_login")]


def test_namespace_deleted_while_at_idp_shows_error_not_redirect(page, stack: Stack) -> None:
    p = Preview("pr-4", f"pr-4.{DOMAIN}", "gate-traefik", free_port())
    start_app(stack, p)
    stack.add_preview(p)
    stack.wait_routable("pr-4")
    statuses: dict[str, int] = {}
    page.on("response", lambda r: statuses.__setitem__(r.url.split("?")[0], r.status))
    page.goto(stack.url("pr-4", DEEP))
    page.wait_for_url(f"{stack.dex.issuer}/**")
    stack.delete_preview("pr-4")
    with stack.api() as c:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pe = c.get("/apis/preview-broker.io/v1alpha1/previewenvironments/pr-4").json()
            if (pe.get("status") or {}).get("phase") == "Terminating":
                break
            time.sleep(0.1)
    time.sleep(0.5)  # the brokers' watches follow within milliseconds
    dex_login(page, stack)
    page.wait_for_url(f"{stack.broker_url}/oauth2/callback**")
    assert statuses[f"{stack.broker_url}/oauth2/callback"] == 410
    assert "no longer exists" in page.text_content("body")


def _login_capturing_callback(page, stack: Stack, ns: str) -> str:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if r.url.startswith(f"{stack.broker_url}/oauth2/callback") else None)
    gate_login(page, stack, ns, "/")
    return seen[0]


def test_tampered_and_replayed_state_get_a_clear_400(page, stack: Stack) -> None:
    callback = _login_capturing_callback(page, stack, "pr-1")
    sessions_before = len(page.context.cookies())
    for _ in range(3):  # whichever replica answers: the state is spent (or its code is)
        replay = page.goto(callback)
        assert replay is not None and replay.status == 400
        assert re.search(r"already used|refused the login code", page.text_content("body"))
    assert len(page.context.cookies()) == sessions_before
    parts = urlsplit(callback)
    query = dict(parse_qsl(parts.query))
    query["state"] = query["state"][:-3] + ("AAA" if not query["state"].endswith("AAA") else "BBB")
    tampered = page.goto(urlunsplit(parts._replace(query=urlencode(query))))
    assert tampered is not None and tampered.status == 400 and "invalid or has expired" in page.text_content("body")
    assert page.url.startswith(stack.broker_url)


def test_sign_out_then_deep_link_asks_for_login_again(page, stack: Stack) -> None:
    gate_login(page, stack, "pr-1")
    page.click("#signout")  # a POST from the preview's own page
    page.wait_for_url(f"{stack.dex.issuer}/**")  # signed out, so the preview's / sends to log in
    assert cookie(page, stack.url("pr-1"), "__Host-pb_session") is None
    page.goto(stack.url("pr-1", DEEP))
    page.wait_for_url(f"{stack.dex.issuer}/**")


def test_a_sign_out_link_only_asks_on_the_broker_page(page, stack: Stack) -> None:
    gate_login(page, stack, "pr-1")
    page.goto(stack.url("pr-1", "/oauth2/sign_out?rd=/bye"))  # a GET any page could trigger
    assert page.url.startswith(f"{stack.broker_url}/oauth2/sign_out")
    assert cookie(page, stack.url("pr-1"), "__Host-pb_session") is not None  # nothing changed yet
    assert f"pr-1.{DOMAIN}" in page.text_content(".host")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{stack.dex.issuer}/**")  # /bye needs a login again
    assert cookie(page, stack.url("pr-1"), "__Host-pb_session") is None

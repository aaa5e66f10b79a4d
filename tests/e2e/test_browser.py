"""A real browser logs into previews through Traefik and Dex, the way a QA engineer meets it."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from tests.support.dex import DEX_USER_EMAIL, DEX_USER_PASSWORD
from tests.support.procs import free_port
from tests.support.stack import DOMAIN, Preview, Stack, start_app

pytestmark = pytest.mark.e2e
DEEP = "/deep/link?x=1&y=two"


def dex_login(page, stack: Stack) -> None:
    """On Dex: pick the password connector if asked, then log in as the demo user."""
    page.wait_for_url(f"{stack.dex.issuer}/**")
    if page.get_by_text("Log in with Email").count():
        page.get_by_text("Log in with Email").click()
    page.fill("#login", DEX_USER_EMAIL)
    page.fill("#password", DEX_USER_PASSWORD)
    page.click("#submit-login")


def gate_round_trip(page, stack: Stack, namespace: str) -> None:
    """Open a deep link on a gated preview, log in at Dex, land on the same deep link, signed in."""
    target = stack.url(namespace, DEEP)
    page.goto(target)
    dex_login(page, stack)
    page.wait_for_url(target)
    assert page.text_content("#user") == "admin"
    assert page.text_content("#email") == DEX_USER_EMAIL
    assert page.text_content("#path") == DEEP


def test_gate_mode_deep_link_round_trip_through_traefik_forward_auth(page, stack: Stack) -> None:
    gate_round_trip(page, stack, "pr-1")


def test_relay_mode_app_gets_code_and_state_and_exchanges_it(page, stack: Stack) -> None:
    page.goto(stack.url("pr-2", "/"))
    dex_login(page, stack)
    page.wait_for_url(stack.url("pr-2", "/"))
    assert page.text_content("#email") == DEX_USER_EMAIL


def test_pr1_session_cookie_does_not_open_another_preview(page, stack: Stack) -> None:
    page.goto(stack.url("pr-1", "/"))
    dex_login(page, stack)
    page.wait_for_url(stack.url("pr-1", "/"))
    (session,) = [c for c in page.context.cookies(stack.url("pr-1", "/")) if c["name"] == "pb_session"]
    assert session["domain"] == f"pr-1.{DOMAIN}"  # host-only
    for other in ("pr-3", "pr-2"):
        page.context.add_cookies([{"name": "pb_session", "value": session["value"], "url": stack.url(other, "/")}])
    page.goto(stack.url("pr-3", "/secret"))
    page.wait_for_url(f"{stack.dex.issuer}/**")  # sent to log in, not let in
    page.goto(stack.url("pr-2", "/"))
    page.wait_for_url(f"{stack.dex.issuer}/**")  # the relay app does not know this user either


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
    time.sleep(0.5)  # the broker's watch follows within milliseconds
    dex_login(page, stack)
    page.wait_for_url(f"{stack.broker_url}/oauth2/callback**")
    assert statuses[f"{stack.broker_url}/oauth2/callback"] == 410
    assert "no longer exists" in page.text_content("body")


def _login_capturing_callback(page, stack: Stack, ns: str) -> str:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if r.url.startswith(f"{stack.broker_url}/oauth2/callback") else None)
    page.goto(stack.url(ns, "/"))
    dex_login(page, stack)
    page.wait_for_url(stack.url(ns, "/"))
    return seen[0]


def test_tampered_and_replayed_state_get_a_clear_400(page, stack: Stack) -> None:
    callback = _login_capturing_callback(page, stack, "pr-1")
    statuses: dict[str, int] = {}
    page.on("response", lambda r: statuses.__setitem__(r.url, r.status))
    replay = page.goto(callback)
    assert replay.status == 400 and "already used" in page.text_content("body")
    parts = urlsplit(callback)
    query = dict(parse_qsl(parts.query))
    query["state"] = query["state"][:-3] + ("AAA" if not query["state"].endswith("AAA") else "BBB")
    tampered = page.goto(urlunsplit(parts._replace(query=urlencode(query))))
    assert tampered.status == 400 and "invalid or has expired" in page.text_content("body")
    assert page.url.startswith(stack.broker_url)


def test_sign_out_then_deep_link_asks_for_login_again(page, stack: Stack) -> None:
    page.goto(stack.url("pr-1", DEEP))
    dex_login(page, stack)
    page.wait_for_url(stack.url("pr-1", DEEP))
    page.click("#signout")
    page.wait_for_url(f"{stack.dex.issuer}/**")
    assert not [c for c in page.context.cookies(stack.url("pr-1", "/")) if c["name"] == "pb_session"]
    page.goto(stack.url("pr-1", DEEP))
    page.wait_for_url(f"{stack.dex.issuer}/**")


def test_gate_mode_through_nginx_annotations(page, stack: Stack) -> None:
    gate_round_trip(page, stack, "pr-3")

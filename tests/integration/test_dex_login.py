"""A real authorization-code login through the real broker process against the real Dex."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.support.dex import (
    APP_CLIENT_ID,
    APP_CLIENT_SECRET,
    DEX_CLIENT_ID,
    DEX_CLIENT_SECRET,
    DEX_USER_EMAIL,
    DEX_USER_PASSWORD,
    Dex,
)
from tests.support.localbroker import BROKER_PORT, PUBLIC
from tests.support.loopback import loopback_client

pytestmark = pytest.mark.dex
PREVIEW = f"http://pr-1.preview.localhost:{BROKER_PORT}"


def test_dex_discovery_and_code_exchange(dex: Dex) -> None:
    """Dex's own endpoints: discovery, then a code from the mock connector exchanged for tokens."""
    doc = httpx.get(f"{dex.issuer}/.well-known/openid-configuration").json()
    assert doc["issuer"] == dex.issuer
    redirect_uri = f"{PUBLIC}/oauth2/callback"
    with httpx.Client(follow_redirects=False) as c:
        r = c.get(
            f"{dex.issuer}/auth/mock",
            params={"client_id": DEX_CLIENT_ID, "redirect_uri": redirect_uri, "response_type": "code",
                    "scope": "openid email", "state": "s1"},
        )
        while not r.headers["location"].startswith(redirect_uri):
            r = c.get(urljoin(str(r.url), r.headers["location"]))
        code = parse_qs(urlsplit(r.headers["location"]).query)["code"][0]
        tokens = c.post(
            doc["token_endpoint"],
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri},
            auth=(DEX_CLIENT_ID, DEX_CLIENT_SECRET),
        )
    assert tokens.status_code == 200, tokens.text
    assert {"access_token", "id_token"} <= set(tokens.json())


def _follow(c: httpx.Client, resp: httpx.Response, stop_at: str | None = None, limit: int = 20) -> httpx.Response:
    for _ in range(limit):
        if resp.status_code not in (301, 302, 303, 307) or (stop_at and resp.headers["location"].startswith(stop_at)):
            return resp
        resp = c.get(urljoin(str(resp.url), resp.headers["location"]))
    raise AssertionError("redirect loop")


def test_gate_login_with_password_through_broker_and_dex(broker_proc, dex: Dex) -> None:
    with loopback_client(follow_redirects=False, timeout=20) as c:
        asked = c.get(f"{PUBLIC}/oauth2/start", params={"rd": f"{PREVIEW}/oauth2/userinfo"})
        # The login begins on the preview host (its login cookie binds the ticket to this browser).
        assert asked.headers["location"].startswith(f"{PREVIEW}/oauth2/start?")
        start = _follow(c, asked, stop_at=dex.issuer)
        assert start.headers["location"].startswith(f"{dex.issuer}/auth?")
        # Pick Dex's password connector, as a user would on its connector page.
        authz = urlsplit(start.headers["location"])
        page = _follow(c, c.get(f"{dex.issuer}/auth/local?{authz.query}"))
        assert page.status_code == 200 and "password" in page.text.lower()
        action = unescape(re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1))
        posted = c.post(urljoin(str(page.url), action), data={"login": DEX_USER_EMAIL, "password": DEX_USER_PASSWORD})
        at_callback = _follow(c, posted, stop_at=PUBLIC)
        assert at_callback.headers["location"].startswith(f"{PUBLIC}/oauth2/callback?")
        ticket = c.get(at_callback.headers["location"])
        assert ticket.status_code == 302, ticket.text
        assert ticket.headers["location"].startswith(f"{PREVIEW}/oauth2/ticket?ticket=")
        landed = c.get(ticket.headers["location"])  # nginx-style: /oauth2/ on the preview host
        assert landed.status_code == 302 and landed.headers["location"] == f"{PREVIEW}/oauth2/userinfo"
        assert "pb_session=" in landed.headers["set-cookie"]
        me = c.get(landed.headers["location"])
        assert me.status_code == 200, me.text
        assert me.json() == {"user": "admin", "email": DEX_USER_EMAIL, "groups": [], "host": "pr-1.preview.localhost"}
        # The same browser's cookie does not open pr-2.
        other = c.get(f"http://pr-2.preview.localhost:{BROKER_PORT}/oauth2/userinfo")
        assert other.status_code == 401


def _relay_round(c: httpx.Client, first: httpx.Response, dex: Dex, return_to: str) -> None:
    """From the broker's redirect to Dex, to the app's callback and its own code exchange."""
    assert first.status_code in (302, 303), first.text
    authz = urlsplit(first.headers["location"])
    assert authz.query and dict(parse_qs(authz.query))["client_id"] == [APP_CLIENT_ID]
    at_callback = _follow(c, c.get(f"{dex.issuer}/auth/mock?{authz.query}"), stop_at=PUBLIC)
    back = c.get(at_callback.headers["location"])
    assert back.status_code == 302
    target = urlsplit(back.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == return_to
    q = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert q["state"] == "app-state-42"
    tokens = httpx.post(
        f"{dex.issuer}/token",
        data={"grant_type": "authorization_code", "code": q["code"], "redirect_uri": f"{PUBLIC}/oauth2/callback"},
        auth=(APP_CLIENT_ID, APP_CLIENT_SECRET),
    )
    assert tokens.status_code == 200, tokens.text
    assert "id_token" in tokens.json()


RELAY_PARAMS = {"client_id": APP_CLIENT_ID, "response_type": "code", "scope": "openid email profile",
                "state": "app-state-42"}


def test_relay_login_with_mock_connector(broker_proc, dex: Dex) -> None:
    """Relay: the app gets code + its own state back and exchanges the code itself at Dex."""
    return_to = f"http://pr-2.preview.localhost:{BROKER_PORT}/app/callback"
    with loopback_client(follow_redirects=False, timeout=20) as c:
        r = c.get(f"{PUBLIC}/oauth2/relay", params={"return_to": return_to, **RELAY_PARAMS},
                  headers={"referer": f"http://pr-2.preview.localhost:{BROKER_PORT}/app/"})  # from the app itself
        _relay_round(c, r, dex, return_to)


def test_a_relay_link_from_elsewhere_is_confirmed_on_the_broker_first(broker_proc, dex: Dex) -> None:
    return_to = f"http://pr-2.preview.localhost:{BROKER_PORT}/app/callback"
    with loopback_client(follow_redirects=False, timeout=20) as c:
        shown = c.get(f"{PUBLIC}/oauth2/relay", params={"return_to": return_to, **RELAY_PARAMS})
        assert shown.status_code == 200 and "pr-2.preview.localhost" in shown.text
        fields = {k: unescape(v) for k, v in re.findall(r'name="(\w+)" value="([^"]*)"', shown.text)}
        confirmed = c.post(f"{PUBLIC}/oauth2/relay", data=fields, headers={"origin": PUBLIC})
        _relay_round(c, confirmed, dex, return_to)


def test_the_gate_client_is_not_relayed(broker_proc) -> None:
    return_to = f"http://pr-2.preview.localhost:{BROKER_PORT}/app/callback"
    with loopback_client(follow_redirects=False, timeout=20) as c:
        r = c.get(f"{PUBLIC}/oauth2/relay", params={"return_to": return_to, **RELAY_PARAMS, "client_id": DEX_CLIENT_ID},
                  headers={"referer": f"http://pr-2.preview.localhost:{BROKER_PORT}/app/"})
        assert r.status_code == 400 and "relay_unknown_client" in r.text

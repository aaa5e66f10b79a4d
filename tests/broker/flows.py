"""Helpers that walk a browser through the broker's redirects (unit level)."""

from __future__ import annotations

from http.cookies import Morsel, SimpleCookie
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from starlette.testclient import TestClient

from tests.broker.fakeidp import FakeIdP


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def start_gate(client: TestClient, idp: FakeIdP, rd: str) -> dict[str, str]:
    resp = client.get("/oauth2/start", params={"rd": rd})
    assert resp.status_code == 302, resp.text
    return idp.remember_authorize(resp.headers["location"])


def callback(client: TestClient, **params: str) -> httpx.Response:
    return client.get("/oauth2/callback?" + urlencode(params))


def gate_login(client: TestClient, idp: FakeIdP, rd: str) -> str:
    """Start, 'log in' at the IdP, return the ticket URL the callback redirects to."""
    params = start_gate(client, idp, rd)
    resp = callback(client, code="code-1", state=params["state"])
    assert resp.status_code == 302, resp.text
    return resp.headers["location"]


def forward_auth(
    client: TestClient, url: str, cookie: str | None = None, *, nginx: bool = False, accept: str = "*/*", query: str = ""
) -> httpx.Response:
    parts = urlsplit(url)
    uri = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"accept": accept}
    if nginx:
        headers["x-original-url"] = url
    else:
        headers.update({"x-forwarded-proto": parts.scheme, "x-forwarded-host": parts.netloc, "x-forwarded-uri": uri})
    if cookie:
        headers["cookie"] = cookie
    client.cookies.clear()  # the forward-auth request carries only the preview host's cookies
    return client.get("/oauth2/auth" + query, headers=headers)


def session_cookie(resp: httpx.Response) -> tuple[str, SimpleCookie]:
    """The `name=value` pair to send back, and the parsed Set-Cookie for attribute checks."""
    raw = resp.headers["set-cookie"]
    parsed = SimpleCookie()
    parsed.load(raw)
    (name, morsel), = parsed.items()
    return f"{name}={morsel.value}", parsed


def assert_clears(cleared: Morsel, issued: Morsel) -> None:
    """`cleared` drops the cookie `issued` set: browsers match on name, domain and path."""
    attributes = ("domain", "path", "secure", "httponly", "samesite")
    assert cleared.key == issued.key
    assert [cleared[a] for a in attributes] == [issued[a] for a in attributes]
    assert cleared.value == "" and cleared["max-age"] == "0"

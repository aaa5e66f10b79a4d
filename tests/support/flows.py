"""Helpers that walk a browser through the broker's redirects (unit level)."""

from __future__ import annotations

from http.cookies import Morsel, SimpleCookie
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from starlette.testclient import TestClient

from tests.support.fakeidp import FakeIdP


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def _preview_jar(client: TestClient) -> dict[str, dict[str, str]]:
    """The login cookies each preview host set in this 'browser' (host -> name -> value).

    The TestClient's own jar holds the broker host's cookies; a preview host's are kept here
    and sent with forward-auth requests for that host, as a browser would."""
    if not hasattr(client, "preview_jar"):
        client.preview_jar = {}  # type: ignore[attr-defined]
    return client.preview_jar  # type: ignore[attr-defined]


def preview_cookies(client: TestClient, host: str) -> str:
    """The Cookie header a browser sends to a preview host (its login cookie, if one was set)."""
    return "; ".join(f"{k}={v}" for k, v in _preview_jar(client).get(host, {}).items())


def broker_start(client: TestClient, rd: str) -> httpx.Response:
    """Begin a gate login as a browser does: on the preview host (which sets its login cookie),
    then the broker's /oauth2/start; returns the latter's answer (a redirect to the IdP)."""
    parts = urlsplit(rd)
    on_preview = forward_auth(client, f"{parts.scheme}://{parts.netloc}/oauth2/start?" + urlencode({"rd": rd}))
    assert on_preview.status_code == 302, on_preview.text
    assert on_preview.headers["location"].startswith(f"{client.base_url}/oauth2/start?")
    return client.get(on_preview.headers["location"])


def start_gate(client: TestClient, idp: FakeIdP, rd: str) -> dict[str, str]:
    """Begin a gate login; returns the parameters the broker sent the IdP."""
    resp = broker_start(client, rd)
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
    client: TestClient, url: str, cookie: str | None = None, *, nginx: bool | None = None, accept: str = "*/*",
    query: str = "", method: str = "GET", extra: dict[str, str] | None = None,
) -> httpx.Response:
    """A forward-auth request as the proxy sends it: Traefik's headers, or nginx's with `nginx`
    (by default, those of the proxy kind the broker is configured for)."""
    if nginx is None:
        nginx = client.app.broker.settings.forward_auth_proxy == "nginx"  # type: ignore[attr-defined]
    parts = urlsplit(url)
    uri = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"accept": accept, **(extra or {})}
    if nginx:
        headers.update({"x-original-url": url, "x-original-method": method})
    else:
        headers.update({"x-forwarded-proto": parts.scheme, "x-forwarded-host": parts.netloc, "x-forwarded-uri": uri,
                        "x-forwarded-method": method})
    jar = _preview_jar(client).setdefault(parts.hostname or "", {})
    sent = [cookie] if cookie else []
    sent += [f"{name}={value}" for name, value in jar.items() if not cookie or f"{name}=" not in cookie]
    if sent:
        headers["cookie"] = "; ".join(sent)
    saved = list(client.cookies.jar)
    client.cookies.clear()  # the forward-auth request carries only the preview host's cookies
    try:
        resp = client.get("/oauth2/auth" + query, headers=headers)
    finally:
        client.cookies.clear()
        for c in saved:
            client.cookies.jar.set_cookie(c)
    for raw in resp.headers.get_list("set-cookie"):
        parsed = SimpleCookie()
        parsed.load(raw)
        for name, morsel in parsed.items():
            if name.endswith("pb_login"):
                jar[name] = morsel.value
    return resp


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

"""COOKIE_DOMAIN (opt-in, risky): one session for every preview under the parent domain."""

from __future__ import annotations

from starlette.testclient import TestClient

from broker.app import create_app
from tests.broker.conftest import PR2, PUBLIC, make_settings
from tests.broker.flows import forward_auth, gate_login, session_cookie

DEEP = "https://pr-1.preview.example.com/x"


def test_parent_domain_cookie_opens_every_preview_only_when_configured(idp, allowlist, clock) -> None:
    settings = make_settings(cookie_domain="preview.example.com")
    with TestClient(create_app(settings, allowlist=allowlist, clock=clock), base_url=PUBLIC,
                    follow_redirects=False) as c:
        resp = forward_auth(c, gate_login(c, idp, DEEP))
        cookie, parsed = session_cookie(resp)
        morsel = parsed["__Secure-pb_session"]
        assert morsel["domain"] == "preview.example.com" and morsel["secure"] and morsel["httponly"]
        assert forward_auth(c, f"https://{PR2}/", cookie).status_code == 202
    with TestClient(create_app(make_settings(), allowlist=allowlist, clock=clock), base_url=PUBLIC,
                    follow_redirects=False) as c:
        # The same token is refused once the operator turns the option off again.
        assert forward_auth(c, f"https://{PR2}/", cookie.replace("__Secure-", "__Host-")).status_code == 401

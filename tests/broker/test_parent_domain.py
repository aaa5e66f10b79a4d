"""COOKIE_DOMAIN (opt-in, risky): one session for every preview under the parent domain."""

from __future__ import annotations

from starlette.testclient import TestClient

from broker.app import create_app
from tests.support.brokerunit import PR2, PUBLIC, make_settings
from tests.support.flows import assert_clears, forward_auth, gate_login, session_cookie

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


def test_sign_out_clears_the_cookie_with_the_attributes_it_was_set_with(idp, allowlist, clock) -> None:
    """A browser drops a cookie only when name, domain and path match the ones it stored."""
    for settings, name in ((make_settings(cookie_domain="preview.example.com"), "__Secure-pb_session"),
                           (make_settings(), "__Host-pb_session")):
        with TestClient(create_app(settings, allowlist=allowlist, clock=clock), base_url=PUBLIC,
                        follow_redirects=False) as c:
            cookie, issued = session_cookie(forward_auth(c, gate_login(c, idp, DEEP)))
            out = forward_auth(c, "https://pr-1.preview.example.com/oauth2/sign_out?rd=/bye", cookie,
                               method="POST", extra={"origin": "https://pr-1.preview.example.com"})
            assert out.status_code == 303
            _, cleared = session_cookie(out)
            assert_clears(cleared[name], issued[name])
            assert issued[name]["max-age"] == str(settings.session_ttl)


def test_sign_out_on_the_broker_host_ends_the_shared_session_too(idp, allowlist, clock) -> None:
    """With COOKIE_DOMAIN the session also reaches the broker's host; signing out there ends it."""
    with TestClient(create_app(make_settings(cookie_domain="preview.example.com"), allowlist=allowlist, clock=clock),
                    base_url=PUBLIC, follow_redirects=False) as c:
        cookie, issued = session_cookie(forward_auth(c, gate_login(c, idp, DEEP)))
        out = c.post("/oauth2/sign_out", headers={"origin": PUBLIC})
        assert out.status_code == 200
        cleared = [h for h in out.headers.get_list("set-cookie") if h.startswith("__Secure-pb_session=")]
        assert len(cleared) == 1 and "Max-Age=0" in cleared[0]
        session = issued["__Secure-pb_session"]
        assert f"Domain={session['domain']}" in cleared[0] and f"Path={session['path']}" in cleared[0]
    with TestClient(create_app(make_settings(), allowlist=allowlist, clock=clock), base_url=PUBLIC,
                    follow_redirects=False) as c:
        # host-only sessions never reach the broker's host: only its own bind cookie is cleared
        out = c.post("/oauth2/sign_out", headers={"origin": PUBLIC})
        names = [h.split("=")[0] for h in out.headers.get_list("set-cookie")]
        assert names == ["__Host-pb_bind"]

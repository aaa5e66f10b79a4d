"""Key rotation through the whole app: a session minted before rotation still opens the preview."""

from __future__ import annotations

from starlette.testclient import TestClient

from broker.app import create_app
from tests.support.brokerunit import KEY_NEW, KEY_OLD, PUBLIC, make_settings
from tests.support.flows import forward_auth, gate_login, session_cookie

DEEP = "https://pr-1.preview.example.com/x"


def _client(keys, allowlist, clock):
    return TestClient(create_app(make_settings(secret_keys=keys), allowlist=allowlist, clock=clock),
                      base_url=PUBLIC, follow_redirects=False)


def test_session_survives_rotation_and_dies_when_key_retired(idp, allowlist, clock) -> None:
    with _client([KEY_OLD], allowlist, clock) as c:
        cookie, _ = session_cookie(forward_auth(c, gate_login(c, idp, DEEP)))
    with _client([KEY_OLD, KEY_NEW], allowlist, clock) as c:
        assert forward_auth(c, DEEP, cookie).status_code == 202
    with _client([KEY_NEW], allowlist, clock) as c:
        assert forward_auth(c, DEEP, cookie).status_code == 401


def test_state_started_before_rotation_completes_after(idp, allowlist, clock) -> None:
    from tests.support.flows import callback, start_gate

    with _client([KEY_OLD], allowlist, clock) as c:
        state = start_gate(c, idp, DEEP)["state"]
        bind = dict(c.cookies)
    with _client([KEY_OLD, KEY_NEW], allowlist, clock) as c:
        c.cookies.update(bind)
        assert callback(c, code="c", state=state).status_code == 302

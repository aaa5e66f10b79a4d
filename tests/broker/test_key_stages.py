"""Keys during a rolling update (issue 25, item 8).

A new key first goes to VERIFY_KEYS on every replica (it verifies, it does not sign); only when
every pod has it does it move to the end of SECRET_KEYS and start signing.  Two replicas one
stage apart behind one proxy then accept each other's states, tickets and sessions: no login
fails during either rollout.
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from broker.app import create_app
from broker.settings import BrokerSettings
from foundation.config import ConfigError, load
from tests.support.brokerunit import KEY_NEW, KEY_OLD, PUBLIC, make_settings
from tests.support.flows import callback, forward_auth, session_cookie, start_gate

DEEP = "https://pr-1.preview.example.com/x"
# The documented procedure: before, stage 1 (new key verify-only), stage 2 (new key signs), after.
BEFORE = {"secret_keys": [KEY_OLD]}
VERIFY_ONLY = {"secret_keys": [KEY_OLD], "verify_keys": [KEY_NEW]}
SIGNING = {"secret_keys": [KEY_OLD, KEY_NEW]}
AFTER = {"secret_keys": [KEY_NEW]}


def _client(keys, allowlist, clock) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(create_app(make_settings(**keys), allowlist=allowlist, clock=clock),
                      base_url=PUBLIC, follow_redirects=False)


def _login_across(idp, allowlist, clock, first: dict, second: dict) -> list[int]:  # type: ignore[type-arg]
    """Start on `first`, come back on `second`, redeem on `first`, use the session on both: the
    status of each step (a load balancer may send any request to either replica)."""
    with _client(first, allowlist, clock) as a, _client(second, allowlist, clock) as b:
        params = start_gate(a, idp, DEEP)
        b.cookies.update(dict(a.cookies))  # one browser: the broker host's cookies go to either pod
        b.preview_jar = a.preview_jar  # type: ignore[attr-defined]
        back = callback(b, code="c", state=params["state"])
        if back.status_code != 302:
            return [back.status_code]
        redeemed = forward_auth(a, back.headers["location"])
        if redeemed.status_code != 302:
            return [302, redeemed.status_code]
        cookie, _ = session_cookie(redeemed)
        return [302, 302, forward_auth(a, DEEP, cookie).status_code, forward_auth(b, DEEP, cookie).status_code]


OK = [302, 302, 202, 202]
ROLLOUTS = [("stage 1 rolling out", BEFORE, VERIFY_ONLY), ("stage 2 rolling out", VERIFY_ONLY, SIGNING),
            ("old key leaving", SIGNING, AFTER)]


@pytest.mark.parametrize("what,old,new", ROLLOUTS[:2], ids=[r[0] for r in ROLLOUTS[:2]])
def test_no_login_fails_between_replicas_one_stage_apart(idp, allowlist, clock, what, old, new) -> None:
    assert _login_across(idp, allowlist, clock, old, new) == OK
    assert _login_across(idp, allowlist, clock, new, old) == OK


def test_without_the_verify_only_stage_a_new_pod_breaks_logins_on_the_old_ones(idp, allowlist, clock) -> None:
    """What the procedure prevents: a pod signing with a key the others do not know yet."""
    assert _login_across(idp, allowlist, clock, SIGNING, BEFORE) == [400]


def test_a_verify_only_key_never_signs(idp, allowlist, clock) -> None:
    with _client(VERIFY_ONLY, allowlist, clock) as a:
        params = start_gate(a, idp, DEEP)
    with _client(BEFORE, allowlist, clock) as old:
        old.cookies.update(dict(a.cookies))
        old.preview_jar = a.preview_jar  # type: ignore[attr-defined]
        assert callback(old, code="c", state=params["state"]).status_code == 302


ENV = {"PREVIEW_BROKER_PUBLIC_URL": PUBLIC, "PREVIEW_BROKER_PREVIEW_DOMAINS": "preview.example.com",
       "PREVIEW_BROKER_PROVIDER": "oidc", "PREVIEW_BROKER_OIDC_ISSUER": "https://idp.example.org",
       "PREVIEW_BROKER_CLIENT_ID": "c", "PREVIEW_BROKER_CLIENT_SECRET": "s",
       "PREVIEW_BROKER_ALLOWED_HOSTS": "pr-1.preview.example.com", "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "example.com"}


@pytest.mark.parametrize("secret,verify,words", [
    (KEY_OLD, "short", "at least 32 characters"),
    (KEY_NEW, f"{KEY_OLD},{KEY_NEW}", "SECRET_KEYS has too"),
])
def test_bad_verify_keys_stop_start_up_with_one_line_naming_the_setting(secret: str, verify: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(BrokerSettings, {**ENV, "PREVIEW_BROKER_SECRET_KEYS": secret, "PREVIEW_BROKER_VERIFY_KEYS": verify})
    assert err.value.setting == "PREVIEW_BROKER_VERIFY_KEYS"
    assert words in err.value.message and KEY_NEW not in str(err.value)  # a key is never echoed

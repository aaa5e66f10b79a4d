"""Signed tokens: one salt per purpose, expiry on an injected clock, key rotation."""

from __future__ import annotations

import pytest

from broker.tokens import TokenError, dump, load, make_serializers
from foundation.clock import FrozenClock
from tests.support.brokerunit import KEY_NEW, KEY_OLD


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


def test_roundtrip(clock) -> None:
    s = make_serializers([KEY_NEW], clock)
    assert load(s.state, dump(s.state, {"a": 1}), 60) == {"a": 1}


@pytest.mark.parametrize(("mint", "check"), [("state", "session"), ("session", "ticket"), ("ticket", "state")])
def test_salts_keep_purposes_apart(clock, mint, check) -> None:
    s = make_serializers([KEY_NEW], clock)
    token = dump(getattr(s, mint), {"h": "x"})
    with pytest.raises(TokenError) as err:
        load(getattr(s, check), token, 60)
    assert err.value.reason == "bad_signature"


@pytest.mark.parametrize(("age", "ok"), [(0, True), (59, True), (60, True), (61, False), (-5, False)])
def test_expiry_follows_the_injected_clock(clock, age, ok) -> None:
    s = make_serializers([KEY_NEW], clock)
    token = dump(s.state, {"a": 1})
    clock.advance(age)
    if ok:
        assert load(s.state, token, 60) == {"a": 1}
    else:
        with pytest.raises(TokenError) as err:
            load(s.state, token, 60)
        assert err.value.reason == "expired"


def test_rotation_old_tokens_verify_new_tokens_use_newest(clock) -> None:
    old = make_serializers([KEY_OLD], clock)
    rotated = make_serializers([KEY_OLD, KEY_NEW], clock)
    new_only = make_serializers([KEY_NEW], clock)
    token_from_old = dump(old.session, {"u": "ada"})
    assert load(rotated.session, token_from_old, 60) == {"u": "ada"}
    token_from_rotated = dump(rotated.session, {"u": "ada"})
    assert load(new_only.session, token_from_rotated, 60) == {"u": "ada"}  # signed with the newest
    with pytest.raises(TokenError):
        load(old.session, token_from_rotated, 60)
    with pytest.raises(TokenError):
        load(new_only.session, token_from_old, 60)  # old key retired: refused


@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, "missing"), ("", "missing"), ("x" * 9000, "oversized"), ("abc", "bad_signature"), ("a.b.c", "bad_signature")],
)
def test_garbage_tokens(clock, token, reason) -> None:
    s = make_serializers([KEY_NEW], clock)
    with pytest.raises(TokenError) as err:
        load(s.state, token, 60)
    assert err.value.reason == reason


def test_non_dict_payload_refused(clock) -> None:
    s = make_serializers([KEY_NEW], clock)
    with pytest.raises(TokenError) as err:
        load(s.state, s.state.dumps([1, 2]), 60)
    assert err.value.reason == "malformed"

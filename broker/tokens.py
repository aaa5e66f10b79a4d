"""Signed, expiring tokens: the OAuth state envelope, login tickets, relay confirmations, sessions.

itsdangerous' URL-safe timed serializers as shipped, one per purpose, each with its own salt,
so a token minted for one purpose never verifies as another (a session cookie pasted into
`state` is just a bad signature).  Keys rotate: `SECRET_KEYS` is a list, newest last;
itsdangerous signs with the last and verifies with every one.  `VERIFY_KEYS` go in front of
them: they verify and never sign, so a rolling update can teach every pod a new key before
any pod signs with it.  The only change is where
"now" comes from: an injectable clock, so expiry tests freeze time instead of sleeping.

Forward auth, the one hot path, refuses bad session cookies with `SessionSignature` below.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    TimestampSigner,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_decode, bytes_to_int
from itsdangerous.signer import HMACAlgorithm

from foundation.clock import Clock

STATE_SALT = "preview-broker.io/state"
TICKET_SALT = "preview-broker.io/ticket"
SESSION_SALT = "preview-broker.io/session"
CONFIRM_SALT = "preview-broker.io/relay-confirm"
MAX_TOKEN_LENGTH = 8192


class TokenError(Exception):
    """A token did not verify; `reason` is logged and counted, never shown verbatim."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Serializers:
    state: URLSafeTimedSerializer
    ticket: URLSafeTimedSerializer
    confirm: URLSafeTimedSerializer
    session: URLSafeTimedSerializer
    clock: Clock


def make_serializers(secret_keys: list[str], clock: Clock, verify_keys: list[str] | None = None) -> Serializers:
    """One serializer per purpose; it signs with the last of `secret_keys` and verifies with those
    and every one of `verify_keys`."""
    keys = [*(verify_keys or []), *secret_keys]  # itsdangerous signs with the last key only
    class ClockSigner(TimestampSigner):
        # itsdangerous asks the signer for "now" when signing and when checking max_age.
        def get_timestamp(self) -> int:
            return int(clock())

    def build(salt: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(keys, salt=salt, signer=ClockSigner)

    return Serializers(build(STATE_SALT), build(TICKET_SALT), build(CONFIRM_SALT), build(SESSION_SALT), clock)


def dump(serializer: URLSafeTimedSerializer, payload: dict[str, Any]) -> str:
    return serializer.dumps(payload)


def load(serializer: URLSafeTimedSerializer, token: str | None, max_age: int) -> dict[str, Any]:
    return load_with_timestamp(serializer, token, max_age)[0]


def load_with_timestamp(
    serializer: URLSafeTimedSerializer, token: str | None, max_age: int
) -> tuple[dict[str, Any], int]:
    """The verified payload and the time it was signed (seconds since the epoch)."""
    if not token:
        raise TokenError("missing")
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("oversized")
    try:
        payload, signed_at = serializer.loads(token, max_age=max_age, return_timestamp=True)
    except SignatureExpired:
        raise TokenError("expired") from None
    except BadSignature:
        raise TokenError("bad_signature") from None
    except Exception:  # malformed base64/JSON inside a validly-signed token
        raise TokenError("malformed") from None
    if not isinstance(payload, dict):
        raise TokenError("malformed")
    return payload, int(signed_at.timestamp())


class SessionSignature:
    """The first question itsdangerous asks of a session cookie, answered at forward-auth speed.

    Anyone on the internet can send a preview host a made-up session cookie, and the broker
    answers each one.  Refusing it must cost about what accepting a real one does (a cache
    hit), not a full library round (key derivation, exception objects, datetime).  So the
    signature and the age are checked here, with HMACs keyed once per key, using
    itsdangerous' own key derivation and decoding; only a token that passes both goes on to
    the library's `loads` (once: the caller caches it).  Tested to agree with
    `serializer.loads` on valid, forged, truncated, expired, future and other-key tokens.
    """

    def __init__(self, serializer: URLSafeTimedSerializer, max_age: int, clock: Clock) -> None:
        signer = serializer.make_signer(serializer.salt)
        if not isinstance(signer.algorithm, HMACAlgorithm):
            raise TypeError("SessionSignature needs an HMAC signer")
        self._macs = [hmac.new(signer.derive_key(key), digestmod=signer.algorithm.digest_method)
                      for key in reversed(serializer.secret_keys)]  # newest first: the usual match
        self._sep = signer.sep.encode() if isinstance(signer.sep, str) else signer.sep
        self._max_age = max_age
        self._clock = clock

    def check(self, token: str) -> str | None:
        """None when the token's signature verifies and it is not expired, else the refusal reason."""
        if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
            return "malformed"
        raw = token.encode("ascii")
        value, sep, sig = raw.rpartition(self._sep)
        if not sep:
            return "malformed"
        try:
            digest = base64_decode(sig)
        except Exception:
            return "bad_signature"
        for keyed in self._macs:
            mac = keyed.copy()
            mac.update(value)
            if hmac.compare_digest(mac.digest(), digest):
                break
        else:
            return "bad_signature"
        _, sep, ts = value.rpartition(self._sep)
        if not sep:
            return "malformed"
        try:
            age = int(self._clock()) - bytes_to_int(base64_decode(ts))
        except Exception:
            return "malformed"
        if age > self._max_age or age < 0:
            return "expired"
        return None

"""Signed, expiring tokens: the OAuth state envelope, login tickets and sessions.

Each kind has its own salt, so a token minted for one purpose never verifies as
another (a session cookie pasted into `state` is just a bad signature).  Keys
rotate: `SECRET_KEYS` is a list, newest last; itsdangerous signs with the last
and verifies with every one.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import want_bytes
from itsdangerous.signer import HMACAlgorithm

from broker.clock import Clock

STATE_SALT = "preview-broker.io/state"
TICKET_SALT = "preview-broker.io/ticket"
SESSION_SALT = "preview-broker.io/session"
MAX_TOKEN_LENGTH = 8192


class TokenError(Exception):
    """A token did not verify; `reason` is logged, never shown verbatim."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Serializers:
    state: URLSafeTimedSerializer
    ticket: URLSafeTimedSerializer
    session: URLSafeTimedSerializer
    clock: Clock


_URLSAFE = bytes.maketrans(b"+/", b"-_")
_PACK_TIMESTAMP = struct.Struct(">Q").pack  # itsdangerous' int_to_bytes, before stripping leading zeros


def b64url(data: bytes) -> bytes:
    """Unpadded base64url, as itsdangerous writes it (without two Python-level wrapper calls)."""
    return binascii.b2a_base64(data, newline=False).rstrip(b"=").translate(_URLSAFE)


# The same compact JSON itsdangerous writes (separators without spaces, ASCII only), from one
# encoder built once instead of one per json.dumps call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class _Uncompressed(URLSafeTimedSerializer):
    """itsdangerous' URL-safe timed tokens, byte for byte, made cheaper to produce.

    No zlib attempt (our payloads are small, and compressing every token cost more than
    signing it; compressed tokens, with a leading '.', still load), and one signer per salt
    instead of a new one per token: a signer holds only its keys and salt, and building it
    was a third of a login redirect's cost.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._signers: dict[bytes | str | None, Any] = {}

    def dump_payload(self, obj: Any) -> bytes:
        return b64url(_COMPACT_JSON.encode(obj).encode())

    def make_signer(self, salt: str | bytes | None = None) -> Any:
        signer = self._signers.get(salt)
        if signer is None:
            signer = self._signers[salt] = super().make_signer(salt)
        return signer


def make_serializers(secret_keys: list[str], clock: Clock) -> Serializers:
    derived: dict[tuple[bytes, bytes | None, str, Any], bytes] = {}

    class _Signer(TimestampSigner):
        # itsdangerous' default is the same SHA-1 behind a Python wrapper (kept lazy for FIPS
        # builds), which sends every HMAC through the pure-Python hmac path; OpenSSL's own is
        # several times cheaper and gives identical signatures.
        default_digest_method = staticmethod(hashlib.sha1)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._sep = want_bytes(self.sep)
            # Keyed once with the newest key; each signature copies it instead of keying a new HMAC.
            # Only for the HMAC the verifier uses: any other algorithm signs the generic way.
            algorithm = self.algorithm
            same_hmac = isinstance(algorithm, HMACAlgorithm) and algorithm.digest_method is self.digest_method
            self._signing_mac = hmac.new(self.derive_key(), digestmod=self.digest_method) if same_hmac else None

        def sign(self, value: str | bytes) -> bytes:
            # TimestampSigner.sign, byte for byte (tested against a vanilla serializer): the
            # payload, its signing time, and the HMAC of both.  Inlined because itsdangerous'
            # generic path (a new HMAC per token, base64 behind two wrappers) cost more than
            # everything else in a login redirect's token.
            if self._signing_mac is None:
                return super().sign(value)
            value = want_bytes(value) + self._sep + b64url(_PACK_TIMESTAMP(self.get_timestamp()).lstrip(b"\0"))
            mac = self._signing_mac.copy()
            mac.update(value)
            return value + self._sep + b64url(mac.digest())

        # itsdangerous asks the signer for "now" both when signing and when
        # checking max_age; routing it through our clock makes expiry testable.
        def get_timestamp(self) -> int:
            return int(clock())

        # itsdangerous re-derives the key (an HMAC) for every signature and every key tried
        # when verifying; the derived key depends only on (key, salt, derivation, digest), so remember it.
        def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
            key = self.secret_keys[-1] if secret_key is None else secret_key
            key = key.encode() if isinstance(key, str) else key
            cache_key = (key, self.salt, self.key_derivation, self.digest_method)
            if cache_key not in derived:
                derived[cache_key] = super().derive_key(key)
            return derived[cache_key]

    def build(salt: str) -> URLSafeTimedSerializer:
        return _Uncompressed(secret_keys, salt=salt, signer=_Signer)

    return Serializers(build(STATE_SALT), build(TICKET_SALT), build(SESSION_SALT), clock)


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
    except Exception:  # malformed base64/JSON inside a validly-shaped token
        raise TokenError("malformed") from None
    if not isinstance(payload, dict):
        raise TokenError("malformed")
    return payload, int(signed_at.timestamp())

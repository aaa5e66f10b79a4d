"""What ties one login to the browser that started it (pure functions, no I/O).

Two random cookie values, each HttpOnly and host-only:

* the bind value, on the broker host: `state` carries a hash of it, and the PKCE verifier
  and OIDC nonce are derived from it, so a `state` (or an authorization code) taken to
  another browser is worthless there;
* the login value, on the preview host: set where the login starts, and its hash rides in
  `state` and then in the ticket, so a ticket redeems only in the browser that began that
  login (an attacker's own ticket, sent as a link, signs nobody in).

The values never travel in URLs; only hashes do.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_HASH = re.compile(r"^[A-Za-z0-9_-]{32}$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_value() -> str:
    """A fresh cookie value: 32 random bytes, 43 base64url characters."""
    return secrets.token_urlsafe(32)


def valid_value(value: str | None) -> bool:
    return bool(value) and _VALUE.match(value) is not None  # type: ignore[arg-type]


def valid_hash(value: str | None) -> bool:
    return bool(value) and _HASH.match(value) is not None  # type: ignore[arg-type]


def derive(purpose: str, value: str, jti: str) -> str:
    """A per-login secret only the browser holding the cookie `value` can reproduce.

    43 characters: a valid PKCE verifier.
    """
    return b64url(hashlib.sha256(f"preview-broker|{purpose}|{value}|{jti}".encode()).digest())


def bind_hash(bind: str) -> str:
    """What `state` carries of the broker-host bind cookie: enough to match it, never the cookie itself."""
    return derive("bind", bind, "")[:32]


def login_hash(login: str) -> str:
    """What the login start URL, `state` and the ticket carry of the preview-host login cookie."""
    return derive("login", login, "")[:32]


def s256(verifier: str) -> str:
    """The PKCE S256 code challenge of a verifier."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())

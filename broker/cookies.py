"""Every cookie the broker reads or writes: names, attributes, and the one-cookie reader.

Names depend on the scheme: over https the `__Host-` prefix makes the browser itself refuse
a Domain attribute or a non-Secure cookie of that name, so a preview app (which may set
cookies for the parent domain) can never plant one.  Without ALLOW_HTTP the broker reads and
writes only those prefixed names, whatever scheme a request claims.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9._~!#$&'()*+/:<=>?@\[\]^`{|}-]*")


@dataclass(frozen=True, slots=True)
class CookieNames:
    session: str  # on a preview host: the gate session
    bind: str  # on the broker host: binds `state` to the browser that started the login
    login: str  # on a preview host: binds the login's ticket to the browser that started it

    @classmethod
    def for_scheme(cls, secure: bool, parent_domain: bool) -> CookieNames:
        if not secure:
            return cls("pb_session", "pb_bind", "pb_login")
        return cls("__Secure-pb_session" if parent_domain else "__Host-pb_session", "__Host-pb_bind",
                   "__Host-pb_login")


def set_cookie_header(
    name: str, value: str, *, max_age: int, secure: bool, domain: str | None = None, path: str = "/"
) -> bytes:
    """One Set-Cookie value: HttpOnly, SameSite=Lax, Secure over https, host-only unless `domain`."""
    if not _COOKIE_VALUE.fullmatch(value) or not _UNRESERVED.fullmatch(name):
        raise ValueError("cookie name or value outside the safe alphabet")
    attrs = [f"{name}={value}", f"Max-Age={max_age}", f"Path={path}"]
    if domain:
        attrs.append(f"Domain={domain}")
    if secure:
        attrs.append("Secure")
    attrs += ["HttpOnly", "SameSite=lax"]
    return "; ".join(attrs).encode("latin-1")


def clear_cookie_header(name: str, *, secure: bool, domain: str | None = None, path: str = "/") -> bytes:
    """A Set-Cookie that makes the browser drop the cookie now (Max-Age=0), with the attributes it was set with."""
    return set_cookie_header(name, "", max_age=0, secure=secure, domain=domain, path=path)


def cookie_value(header: str, name: str) -> str | None:
    """One cookie's value from a Cookie header, without parsing the others (forward auth's hot path)."""
    if name not in header:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip('"')
    return None


def request_cookie(raw_headers: Iterable[tuple[bytes, bytes]], name: str) -> str | None:
    """One cookie of a request, from all its Cookie headers (HTTP/2 may split them)."""
    header = "; ".join(v.decode("latin-1") for k, v in raw_headers if k == b"cookie")
    return cookie_value(header, name) if header else None

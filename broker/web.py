"""Small, fast HTTP building blocks: every redirect and every cookie the broker writes.

Starlette's RedirectResponse re-quotes every URL and set_cookie goes through
http.cookies; both showed up as a large share of a login redirect's cost.
`redirect` sends the Location Starlette would (tested), straight when nothing in it
needs quoting; `set_cookie_header` and `clear_cookie_header` give every cookie the
same attributes.  Cookie values here are made by the broker itself (tokens, random
values), so a plain alphabet check replaces the general machinery.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response

from broker.pages import NO_STORE

_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*")
# The characters Starlette's RedirectResponse does not quote (its `safe` set plus the unreserved ones).
_LOCATION_AS_IS = re.compile(r"[A-Za-z0-9_.~\-:/%#?=@\[\]!$&'()*+,;]*")
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9._~!#$&'()*+/:<=>?@\[\]^`{|}-]*")
# The headers every broker page and redirect carries (pages.NO_STORE), as raw ASGI pairs.
NO_STORE_RAW = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in NO_STORE.items()]


@lru_cache(maxsize=1024)
def _quoted(text: str) -> str:
    # Parameter names and most values (client_id, redirect_uri, scope) repeat on every login.
    return quote(text, safe="")


def encode_query(params: dict[str, str]) -> str:
    """application/x-www-form-urlencoded with %20 for spaces (what urlencode(quote_via=quote) gives)."""
    token = _UNRESERVED.fullmatch
    return "&".join([f"{_quoted(k)}={v if token(v) else _quoted(v)}" for k, v in params.items()])


def set_cookie_header(
    name: str, value: str, *, max_age: int, secure: bool, domain: str | None = None, path: str = "/"
) -> bytes:
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


def pick_headers(raw: Iterable[tuple[bytes, bytes]], names: frozenset[bytes]) -> dict[str, str]:
    """The named headers of an ASGI header list, decoded (and only those).

    Forward auth reads a handful of the dozen headers an ingress sends; decoding them all
    showed up on the hot path.  ASGI servers deliver names lower-cased; of a repeated
    header the last one wins.
    """
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in raw if k in names}


class RawResponse(Response):
    """A response whose raw header list is given as is (no re-encoding, no extra headers)."""

    def __init__(self, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = [*raw_headers, (b"content-length", str(len(body)).encode())]


def redirect(url: str, cookies: Iterable[bytes] = ()) -> Response:
    """302 to `url` with no-store headers and the given Set-Cookie values.

    The Location is exactly what Starlette's RedirectResponse would send (tested): a URL
    made only of characters it leaves alone goes out as is, anything else through it.
    """
    if not _LOCATION_AS_IS.fullmatch(url):
        resp = RedirectResponse(url, 302, headers=NO_STORE)
        for c in cookies:
            resp.raw_headers.append((b"set-cookie", c))
        return resp
    headers = [(b"location", url.encode("ascii")), *NO_STORE_RAW, *((b"set-cookie", c) for c in cookies)]
    return RawResponse(302, headers)

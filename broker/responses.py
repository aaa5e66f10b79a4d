"""Every response the broker writes: redirects, raw answers, and small HTML pages for people.

`redirect` sends exactly the Location Starlette's RedirectResponse would (tested), but
skips its re-quoting when nothing in the URL needs it: forward auth sends browsers to
login through it.  Pages escape every dynamic value, are never cached, never framed
(a confirmation page inside an attacker's frame could be clicked blind), and send no
Referer onwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape

from starlette.responses import HTMLResponse, RedirectResponse, Response

NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
# The headers every broker page and redirect carries, as raw ASGI pairs.
NO_STORE_RAW = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in NO_STORE.items()]
PAGE_HEADERS = {
    **NO_STORE,
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; "
    "frame-ancestors 'none'; base-uri 'none'",
}
# A page whose form POSTs: browsers send `Origin: null` on a POST from a page with the
# no-referrer policy, so these pages name their origin instead (and only their origin, to
# other sites): the endpoints that take the form check that Origin.
FORM_PAGE_HEADERS = {**PAGE_HEADERS, "Referrer-Policy": "strict-origin-when-cross-origin"}
# The characters Starlette's RedirectResponse does not quote (its `safe` set plus the unreserved ones).
_LOCATION_AS_IS = re.compile(r"[A-Za-z0-9_.~\-:/%#?=@\[\]!$&'()*+,;]*")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} · preview-broker</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} .code{{color:#888;font-size:.85rem}} .host{{font-weight:600;word-break:break-all}}
button{{font:inherit;padding:.4rem 1.2rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


class RawResponse(Response):
    """A response whose raw header list is given as is (no re-encoding, no extra headers)."""

    def __init__(self, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = [*raw_headers, (b"content-length", str(len(body)).encode())]


class PrebuiltResponse(Response):
    """A response built once, ahead, and sent as often as needed (sending it changes nothing in it):
    forward auth's answers, the same for every request of one identity."""

    def __init__(self, status_code: int, raw_headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = [*raw_headers, (b"content-length", str(len(body)).encode())]
        self._start = {"type": "http.response.start", "status": status_code, "headers": self.raw_headers}
        self._body = {"type": "http.response.body", "body": body}

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def, override]
        await send(self._start)
        await send(self._body)


def redirect(url: str, cookies: Iterable[bytes] = (), status: int = 302) -> Response:
    """A redirect to `url` with no-store headers and the given Set-Cookie values."""
    if not _LOCATION_AS_IS.fullmatch(url):
        resp = RedirectResponse(url, status, headers=NO_STORE)
        for c in cookies:
            resp.raw_headers.append((b"set-cookie", c))
        return resp
    headers = [(b"location", url.encode("ascii")), *NO_STORE_RAW, *((b"set-cookie", c) for c in cookies)]
    return RawResponse(status, headers)


def _html(status: int, title: str, body: str, cookies: Iterable[bytes],
          headers: dict[str, str] = PAGE_HEADERS) -> HTMLResponse:
    resp = HTMLResponse(_PAGE.format(title=escape(title), body=body), status_code=status, headers=headers)
    resp.raw_headers += [(b"set-cookie", c) for c in cookies]
    return resp


def page(status: int, title: str, message: str, reason: str = "", cookies: Iterable[bytes] = ()) -> HTMLResponse:
    """A short page: a title, one sentence, and the status and reason for whoever reports it."""
    body = f'<p>{escape(message)}</p><p class="code">{status} · {escape(reason)}</p>'
    return _html(status, title, body, cookies)


def form_page(
    title: str,
    message: str,
    *,
    action: str,
    fields: dict[str, str],
    button: str,
    host: str = "",
    cookies: Iterable[bytes] = (),
) -> HTMLResponse:
    """A page whose one button POSTs `fields` to `action`: what a state change asks of a person."""
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items())
    shown = f'<p class="host">{escape(host)}</p>' if host else ""
    body = (f"<p>{escape(message)}</p>{shown}"
            f'<form method="post" action="{escape(action)}">{hidden}<button type="submit">{escape(button)}</button>'
            "</form>")
    return _html(200, title, body, cookies, FORM_PAGE_HEADERS)

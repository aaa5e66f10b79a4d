"""Small HTML pages for people (errors, sign-out). Every dynamic value is escaped."""

from __future__ import annotations

from html import escape

from starlette.responses import HTMLResponse

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} · preview-broker</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} .code{{color:#888;font-size:.85rem}}</style></head>
<body><h1>{title}</h1><p>{message}</p><p class="code">{status} · {reason}</p></body></html>
"""

NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def page(status: int, title: str, message: str, reason: str = "") -> HTMLResponse:
    body = _PAGE.format(title=escape(title), message=escape(message), status=status, reason=escape(reason))
    return HTMLResponse(body, status_code=status, headers=NO_STORE)

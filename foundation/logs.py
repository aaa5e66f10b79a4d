"""Logs on stderr, one line per event: JSON objects (the default, for log pipelines) or text.

Timestamps are RFC 3339 in UTC with milliseconds (2026-11-29T13:22:05.123Z), so lines from
pods in different time zones sort and join. uvicorn's `color_message` (the same message with
ANSI escapes) is dropped. Lines logged while an HTTP request is handled carry its
`request_id`: the well-formed X-Request-Id the proxy sent, else one made up for the request.

Fields carry what clients and identity providers sent (hosts, user names, IdP error texts,
API server messages). A text line shows none of it raw: control characters (C0, C1, DEL),
format characters (bidi controls, zero-width ones), line and paragraph separators and lone
surrogates are written as `\\x1b`, `\\u2028`, ..., and the backslash itself as `\\\\`, so
the escaping is reversible and no value can forge a line, recolour a terminal or pose as
another field. JSON lines get the same from json.dumps (ensure_ascii escapes all non-ASCII).
"""

from __future__ import annotations

import logging
import re
import sys
import unicodedata
import uuid
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("json", "text")
REQUEST_ID_HEADER = b"x-request-id"
# What an incoming X-Request-Id may be: what proxies generate (UUIDs, hex, Traefik's and
# nginx's ids) and nothing that could forge a second field or line in a text log.
_WELL_FORMED = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:+/=-]{0,127}")
_SCOPE_KEY = "preview_broker.request_id"
# The ASGI scope of the request being handled. Binding costs one ContextVar.set per request; the
# id itself is worked out only when a line is logged (forward auth logs nothing when all is well).
_scope: ContextVar[dict[str, Any] | None] = ContextVar("preview_broker_request_scope", default=None)
_RECORD_FIELDS = set(vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None))) | {"message", "asctime"}


def bind_request(scope: dict[str, Any]) -> None:
    """Lines logged from now on in this task (each request runs in its own) carry the request's id."""
    _scope.set(scope)


def request_id() -> str | None:
    scope = _scope.get()
    if scope is None:
        return None
    rid = scope.get(_SCOPE_KEY)
    if rid is None:
        rid = scope[_SCOPE_KEY] = _incoming_id(scope.get("headers") or ()) or uuid.uuid4().hex
    return rid


def _incoming_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER:
            return value.decode("ascii") if _WELL_FORMED.fullmatch(value) else None
    return None


def rfc3339(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Context(logging.Filter):
    """Adds the request id; drops uvicorn's ANSI copy of the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        rid = request_id()
        if rid is not None and "request_id" not in record.__dict__:
            record.request_id = rid
        return True


class _Json(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # logging calls it by this name
        return rfc3339(record.created)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL logger message key=value ...`: for people reading a terminal or `kubectl logs`.

    Every part is escaped (`escape_text`). A record spans one line; a traceback's lines follow,
    each indented, so no line of one can pass for the start of a record.
    """

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{escape_text(k)}={_text_value(v)}"
                          for k, v in record.__dict__.items() if k not in _RECORD_FIELDS)
        line = f"{rfc3339(record.created)} {record.levelname:<7} {escape_text(record.name)} " \
               f"{escape_text(record.getMessage())}"
        if fields:
            line += " " + fields
        if record.exc_info:
            line += _indented(self.formatException(record.exc_info))
        if record.stack_info:
            line += _indented(self.formatStack(record.stack_info))
        return line


# Printable ASCII but space, '"', '=' and '\\': a value made only of these is written as it is.
_PLAIN = re.compile(r'[!#-<>-\[\]-~]+')
_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Format (bidi and zero-width controls), surrogate, line and paragraph separator characters:
# invisible, or rendered as a line break by terminals, editors and log viewers.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def escape_text(text: str, quote: str = "") -> str:
    """`text` with its backslashes, control, format, separator and surrogate characters escaped
    (and `quote` too, inside a quoted value); reversible, printable and on one line."""
    if _PLAIN.fullmatch(text):
        return text
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif ch == quote:
            out.append("\\" + ch)
        elif _unsafe(ch):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def _unsafe(ch: str) -> bool:
    if ch.isascii():
        return not " " <= ch <= "~"
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES  # C1 controls (U+0085 NEL among them) are Cc


def _text_value(value: object) -> str:
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    # Quoted when a reader would otherwise see a separator: a space (any kind), '"' or '='.
    if not text or any(c in '"=' or c.isspace() for c in text):
        return '"' + escape_text(text, '"') + '"'
    return escape_text(text)


def _indented(text: str) -> str:
    # Split at "\n" only: any other line break in an exception's text is escaped like the rest.
    return "".join("\n    " + escape_text(line) for line in text.split("\n"))


def formatter(fmt: str = "json") -> logging.Formatter:
    if fmt == "text":
        return TextFormatter()
    return _Json(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def setup(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(_Context())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)

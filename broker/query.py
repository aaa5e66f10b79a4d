"""Query strings and form bodies: urllib's parse_qsl, plus the rules no honest client breaks.

Logins are not a hot path (an identity-provider round trip follows each), so parsing is
the library's own; the broker adds only refusals: repeated keys (which value would win?),
floods of fields, and giant values.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from broker.errors import BadRequest

MAX_PARAMS = 40
MAX_PARAM_LENGTH = 4096
MAX_KEY_LENGTH = 128


def parse_params(query: str) -> dict[str, str]:
    """The fields of an application/x-www-form-urlencoded string, or BadRequest."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_PARAMS, errors="strict")
    except (ValueError, UnicodeDecodeError):  # too many fields, or an escape that is not UTF-8
        raise BadRequest("bad_query", "The query string is malformed or has too many parameters.") from None
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest("duplicate_param", f"The parameter {key[:40]!r} appears more than once.")
        if len(value) > MAX_PARAM_LENGTH or len(key) > MAX_KEY_LENGTH:
            raise BadRequest("oversized_param", f"The parameter {key[:40]!r} is too long.")
        out[key] = value
    return out


def query_of(scope: dict) -> str:  # type: ignore[type-arg]
    """The raw query string of an ASGI scope (request.url would build and parse the whole URL)."""
    return scope["query_string"].decode("latin-1")

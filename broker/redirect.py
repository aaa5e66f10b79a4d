"""Redirect-target policy: a pure function, no request object, no I/O.

A target is accepted only when, after strict parsing, its host is exactly in the
live allowlist.  Everything ambiguous is refused rather than "cleaned": browsers
and URL libraries disagree on backslashes, encoded separators, control
characters and userinfo, and each disagreement has been an open redirect in a
real product (see tests/broker/testdata/openredirects.txt).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Container
from dataclasses import dataclass
from functools import lru_cache

from foundation.hosts import InvalidHost, normalize_host

MAX_TARGET_LENGTH = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_PORT = re.compile(r"^[0-9]{1,5}$")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a relative target came from: a preview host's scheme, host and port."""

    scheme: str
    host: str
    port: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str  # short machine-readable reason, "ok" when accepted
    url: str = ""  # the rebuilt, normalized URL to redirect to (only when ok)
    host: str = ""  # the normalized host (only when ok)
    scheme: str = ""

    def __bool__(self) -> bool:
        return self.ok


def _refuse(reason: str) -> Verdict:
    return Verdict(False, reason)


# Printable ASCII without space and backslash: nothing in it can be forbidden, so the
# per-character Unicode scan below is skipped for the usual URL (a measurable share of a login).
_PLAIN = re.compile(r"[\x21-\x5b\x5d-\x7e]*")


def _has_forbidden_chars(target: str) -> str | None:
    if _PLAIN.fullmatch(target):
        return None
    for ch in target:
        if ch == "\\":
            return "backslash"
        if ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F:
            return "whitespace_or_control"
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cs", "Cn"):
            return "whitespace_or_control"
    return None


def check_redirect(
    target: str,
    allowlist: Container[str],
    *,
    allow_http: bool = False,
    extra_ports: frozenset[int] = frozenset(),
    origin: Origin | None = None,
) -> Verdict:
    """Decide whether the browser may be sent to `target`.

    `origin` resolves a root-relative target ("/path?x") against the preview host
    it came from; without it relative targets are refused.
    """
    verdict = _check_shape(target, allow_http, extra_ports, origin)
    if verdict and verdict.host not in allowlist:
        return _refuse("host_not_allowed")
    return verdict


@lru_cache(maxsize=4096)
def _check_shape(target: str, allow_http: bool, extra_ports: frozenset[int], origin: Origin | None) -> Verdict:
    """Every rule but the live allowlist: a pure function of its arguments, so its answers are
    remembered (the same deep links come back again and again; parsing them was a tenth of a
    login redirect). The allowlist changes, so membership is always checked afresh."""
    if not target:
        return _refuse("empty")
    if len(target) > MAX_TARGET_LENGTH:
        return _refuse("too_long")
    if bad := _has_forbidden_chars(target):
        return _refuse(bad)

    if target.startswith("/"):
        if target.startswith("//"):
            return _refuse("scheme_relative")
        if origin is None:
            return _refuse("relative_without_origin")
        scheme, authority_host, port, rest = origin.scheme, origin.host, origin.port, target
        return _accept(scheme, authority_host, port, rest, allow_http, extra_ports)

    m = _SCHEME.match(target)
    if not m:
        return _refuse("not_absolute")
    scheme = m.group(1).lower()
    remainder = target[m.end() :]
    if not remainder.startswith("//"):
        return _refuse("no_authority")
    remainder = remainder[2:]
    cut = len(remainder)
    for sep in "/?#":
        i = remainder.find(sep)
        if i != -1 and i < cut:
            cut = i
    authority, rest = remainder[:cut], remainder[cut:]
    if not authority:
        return _refuse("empty_host")
    if "@" in authority:
        return _refuse("userinfo")
    if "%" in authority:
        return _refuse("encoded_authority")
    if authority.startswith("["):
        return _refuse("ip_literal")
    host, sep, port_text = authority.rpartition(":")
    if not sep:
        host, port_text = authority, ""
    port: int | None = None
    if sep:
        if not _PORT.match(port_text):
            return _refuse("bad_port")
        port = int(port_text)
        if not 0 < port < 65536:
            return _refuse("bad_port")
    if rest and not rest.startswith(("/", "?", "#")):
        return _refuse("bad_path")
    return _accept(scheme, host, port, rest or "/", allow_http, extra_ports)


def _accept(
    scheme: str,
    raw_host: str,
    port: int | None,
    rest: str,
    allow_http: bool,
    extra_ports: frozenset[int],
) -> Verdict:
    if scheme not in DEFAULT_PORTS or (scheme == "http" and not allow_http):
        return _refuse("scheme")
    if port is not None and port != DEFAULT_PORTS[scheme] and port not in extra_ports:
        return _refuse("port")
    try:
        host = normalize_host(raw_host)
    except InvalidHost:
        return _refuse("invalid_host")
    if rest.startswith("//"):
        # "https://h//evil.com" is a path, but some frameworks re-emit it as a
        # scheme-relative Location; nobody needs it.
        return _refuse("double_slash_path")
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    if not rest.startswith("/"):
        rest = "/" + rest
    return Verdict(True, "ok", f"{scheme}://{netloc}{rest}", host, scheme)

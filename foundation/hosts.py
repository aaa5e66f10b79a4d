"""Host names in one canonical form: case-folded, IDNA (A-labels), no trailing dot.

Every comparison of hosts in preview-broker goes through `normalize_host`, so that
`PR-1.Preview.Example.COM.` and `pr-1.preview.example.com` are the same key and a
Unicode look-alike is compared by what the browser will actually resolve.
"""

from __future__ import annotations

import re
from functools import lru_cache

import idna

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class InvalidHost(ValueError):
    """The text is not a DNS host name we accept."""


@lru_cache(maxsize=65536)
def normalize_host(raw: str) -> str:
    """Return the canonical host or raise InvalidHost.

    Only DNS names: IP literals, ports, userinfo, empty labels and anything that
    is not a letter, digit or hyphen after IDNA mapping are refused.
    """
    if not raw or len(raw) > 260:
        raise InvalidHost("empty or too long")
    host = raw[:-1] if raw.endswith(".") else raw
    if not host.isascii():
        try:
            # UTS-46 mapping is what browsers do (full-width dots, case, ...).
            host = idna.encode(host, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidHost(f"not a valid IDNA name: {exc}") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidHost("not a DNS host name")
    if labels[-1].isdigit():
        raise InvalidHost("IP addresses are not preview hosts")
    if any(label.startswith("xn--") for label in labels):
        try:
            idna.decode(host)
        except idna.IDNAError as exc:
            raise InvalidHost(f"invalid punycode label: {exc}") from None
    return host


def is_under(host: str, domains: frozenset[str] | tuple[str, ...]) -> bool:
    """True when the normalized `host` is a strict subdomain of one of `domains`.

    This decides which hosts a namespace may *claim*; it is never used to accept a
    redirect target (that is exact allowlist membership only).
    """
    return any(host.endswith("." + d) for d in domains)


def parse_domains(values: list[str]) -> list[str]:
    """PREVIEW_DOMAINS for both components: at least one, each a DNS name (normalized)."""
    if not values:
        raise ValueError("needs at least one parent domain, e.g. preview.example.com")
    try:
        return [normalize_host(d) for d in values]
    except InvalidHost as exc:
        raise ValueError(f"not a DNS name: {exc}") from None

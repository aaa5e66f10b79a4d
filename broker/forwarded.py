"""Which preview request is being authorized, from the ingress's headers (pure).

Traefik ForwardAuth sends X-Forwarded-Proto/-Host/-Uri; ingress-nginx's
`auth-url` sends X-Original-URL.  Requests routed straight to the broker on a
preview host (nginx-style `/oauth2/` paths) carry Host and X-Forwarded-Proto.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from broker.errors import BadRequest
from broker.hosts import InvalidHost, normalize_host
from broker.redirect import DEFAULT_PORTS, Origin

MAX_URI = 8192
# Every header from_forward_auth and the forward-auth decision read (see web.pick_headers).
FORWARD_AUTH_HEADERS = frozenset(
    {b"x-original-url", b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-uri", b"x-forwarded-method",
     b"cookie", b"accept"}
)
# What from_direct reads.
DIRECT_HEADERS = frozenset({b"host", b"x-forwarded-host", b"x-forwarded-proto"})


@dataclass(frozen=True, slots=True)
class PreviewRequest:
    scheme: str
    host: str
    port: int | None
    path: str
    query: str

    @property
    def origin(self) -> Origin:
        return Origin(self.scheme, self.host, self.port)

    @property
    def base_url(self) -> str:
        if self.port is None or self.port == DEFAULT_PORTS.get(self.scheme):
            return f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path + (f"?{self.query}" if self.query else "")


def _split_host_port(raw: str) -> tuple[str, int | None]:
    host, sep, port = raw.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return host, int(port)
    return raw, None


def _build(scheme: str, raw_host: str, uri: str) -> PreviewRequest:
    scheme = scheme.strip().lower() or "https"
    if scheme not in DEFAULT_PORTS:
        raise BadRequest("bad_forwarded_proto", "The forwarded protocol is not http or https.")
    if len(uri) > MAX_URI:
        raise BadRequest("forwarded_uri_too_long", "The forwarded URI is too long.")
    if not uri.startswith("/"):
        raise BadRequest("bad_forwarded_uri", "The forwarded URI must start with '/'.")
    host_text, port = _split_host_port(raw_host.split(",")[0].strip())
    try:
        host = normalize_host(host_text)
    except InvalidHost:
        raise BadRequest("bad_forwarded_host", "The forwarded host is not a valid host name.") from None
    path, _, query = uri.partition("?")
    path = path.partition("#")[0]
    return PreviewRequest(scheme, host, port, path, query)


def from_forward_auth(headers: Mapping[str, str]) -> PreviewRequest:
    """The preview request behind a forward-auth call, or BadRequest."""
    original = headers.get("x-original-url")
    if original:
        if len(original) > MAX_URI:
            raise BadRequest("forwarded_uri_too_long", "The forwarded URI is too long.")
        parts = urlsplit(original)
        if not parts.netloc or parts.username or parts.password:
            raise BadRequest("bad_original_url", "X-Original-URL is not an absolute URL.")
        uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return _build(parts.scheme, parts.netloc, uri)
    host = headers.get("x-forwarded-host")
    if not host:
        raise BadRequest(
            "no_forwarded_host",
            "This endpoint is for the ingress: it needs X-Forwarded-Host/-Uri (Traefik) or X-Original-URL (nginx).",
        )
    return _build(headers.get("x-forwarded-proto", "https"), host, headers.get("x-forwarded-uri", "/"))


def from_direct(headers: Mapping[str, str], scheme: str, path: str, query: str) -> PreviewRequest:
    """A request routed straight to the broker (its own host, or a preview host's /oauth2/ path)."""
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    proto = headers.get("x-forwarded-proto") or scheme
    return _build(proto, host, path + (f"?{query}" if query else ""))

"""Which preview request is being authorized, read only from headers the proxy in front sets (pure).

A preview app's users, and its attackers, send any header they like; a proxy passes most of
them on.  So each proxy kind has exactly the headers it writes itself, and the broker reads
those and nothing else (FORWARD_AUTH_PROXY):

* traefik: ForwardAuth overwrites X-Forwarded-Proto/-Host/-Uri/-Method with the request's
  own values (unless the operator set trustForwardHeader).  X-Original-URL, which Traefik
  passes through from the client, is ignored.
* nginx: ingress-nginx's auth-url subrequest sets X-Original-URL and X-Original-Method.
  X-Forwarded-*, which a client may send, is ignored.

Gateway API external auth (GEP-1494's HTTP protocol, Envoy's HTTP ext_authz) is a kind of
its own, on its own path: the gateway sends the original request itself, its path appended to
EXT_AUTH_PREFIX, with the Host it routed by, the original method, and only the headers the
route allows.  Its scheme is https (the gateway terminates TLS): X-Forwarded-Proto is read only
with ALLOW_HTTP, since a gateway that copies client headers (an nginx auth_request) would pass
a client's one through.

Requests routed straight to the broker on a preview host (nginx-style `/oauth2/` paths) are
read from Host and X-Forwarded-Host/-Proto, which every ingress overwrites.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

from broker.errors import BadRequest
from broker.redirect import DEFAULT_PORTS, Origin
from foundation.hosts import InvalidHost, normalize_host

MAX_URI = 8192
# What the forward-auth decision reads besides the request's identity: the session and login
# cookies, whether a browser asks (Accept), and where a sign-out POST came from.
_COMMON = frozenset({b"cookie", b"accept", b"origin", b"sec-fetch-site"})
FORWARD_AUTH_HEADERS = {
    "traefik": _COMMON | {b"x-forwarded-host", b"x-forwarded-proto", b"x-forwarded-uri", b"x-forwarded-method"},
    "nginx": _COMMON | {b"x-original-url", b"x-original-method"},
}
# What the external-auth endpoint reads (besides the request line itself).
GATEWAY_HEADERS = _COMMON | {b"host", b"x-forwarded-proto"}
# What from_direct reads.
DIRECT_HEADERS = frozenset({b"host", b"x-forwarded-host", b"x-forwarded-proto"})


class PreviewRequest(NamedTuple):
    """The preview request behind a forward-auth call (a tuple: built on every request, so cheaply)."""

    scheme: str
    host: str
    port: int | None
    path: str
    query: str
    method: str = "GET"

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


def pick_headers(raw: Iterable[tuple[bytes, bytes]], names: frozenset[bytes]) -> dict[str, str]:
    """The named headers of an ASGI header list, decoded (and only those).

    Forward auth reads a handful of the dozen headers an ingress sends; decoding them all
    showed up on the hot path.  ASGI servers deliver names lower-cased; of a repeated
    header the last one wins.
    """
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in raw if k in names}


def _split_host_port(raw: str) -> tuple[str, int | None]:
    host, sep, port = raw.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return host, int(port)
    return raw, None


@lru_cache(maxsize=4096)
def _host_and_port(raw_host: str) -> tuple[str, int | None]:
    """The normalized host and port of a forwarded Host value (the same few on every request)."""
    host_text, port = _split_host_port(raw_host.split(",")[0].strip())
    if port is not None and not 0 < port < 65536:
        raise BadRequest("bad_forwarded_host", "The forwarded port is out of range.")
    try:
        return normalize_host(host_text), port
    except InvalidHost:
        raise BadRequest("bad_forwarded_host", "The forwarded host is not a valid host name.") from None


def _build(scheme: str, raw_host: str, uri: str, method: str = "GET") -> PreviewRequest:
    scheme = scheme.strip().lower() or "https"
    if scheme not in DEFAULT_PORTS:
        raise BadRequest("bad_forwarded_proto", "The forwarded protocol is not http or https.")
    if len(uri) > MAX_URI:
        raise BadRequest("forwarded_uri_too_long", "The forwarded URI is too long.")
    if not uri.startswith("/"):
        raise BadRequest("bad_forwarded_uri", "The forwarded URI must start with '/'.")
    host, port = _host_and_port(raw_host)
    path, _, query = uri.partition("?")
    path = path.partition("#")[0]
    return PreviewRequest(scheme, host, port, path, query, (method.strip().upper() or "GET")[:16])


def from_traefik(headers: Mapping[str, str]) -> PreviewRequest:
    host = headers.get("x-forwarded-host")
    if not host:
        raise BadRequest("no_forwarded_host",
                         "This endpoint is for Traefik's ForwardAuth: it needs X-Forwarded-Host/-Uri "
                         "(or set FORWARD_AUTH_PROXY for your proxy).")
    return _build(headers.get("x-forwarded-proto", "https"), host, headers.get("x-forwarded-uri", "/"),
                  headers.get("x-forwarded-method", "GET"))


def from_nginx(headers: Mapping[str, str]) -> PreviewRequest:
    original = headers.get("x-original-url")
    if not original:
        raise BadRequest("no_original_url",
                         "This endpoint is for nginx-style auth-url: it needs X-Original-URL "
                         "(or set FORWARD_AUTH_PROXY for your proxy).")
    if len(original) > MAX_URI:
        raise BadRequest("forwarded_uri_too_long", "The forwarded URI is too long.")
    try:
        parts = urlsplit(original)
        netloc = parts.netloc
    except ValueError:  # e.g. an unclosed IPv6 bracket: "https://[pr-1/"
        raise BadRequest("bad_original_url", "X-Original-URL is not an absolute URL.") from None
    if not netloc or "@" in netloc:
        raise BadRequest("bad_original_url", "X-Original-URL is not an absolute URL.")
    uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _build(parts.scheme, netloc, uri, headers.get("x-original-method", "GET"))


READERS = {"traefik": from_traefik, "nginx": from_nginx}


def from_gateway(headers: Mapping[str, str], path: str, query: str, method: str, allow_http: bool) -> PreviewRequest:
    """The original request of a GEP-1494 HTTP external-auth check (`path` with the prefix removed)."""
    host = headers.get("host")
    if not host:
        raise BadRequest("no_host", "This endpoint is for a gateway's external auth: it needs the Host header.")
    scheme = headers.get("x-forwarded-proto", "https") if allow_http else "https"
    return _build(scheme, host, (path or "/") + (f"?{query}" if query else ""), method)


def from_direct(headers: Mapping[str, str], scheme: str, path: str, query: str, method: str = "GET") -> PreviewRequest:
    """A request routed straight to the broker (its own host, or a preview host's /oauth2/ path)."""
    host = headers.get("x-forwarded-host") or headers.get("host") or ""
    proto = headers.get("x-forwarded-proto") or scheme
    return _build(proto, host, path + (f"?{query}" if query else ""), method)

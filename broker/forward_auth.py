"""Forward auth: the hot path, one decision per request of every protected preview.

The ingress asks /oauth2/auth before each request to a preview app.  The answer is made
from the proxy's headers alone (see forwarded.py for which), with no I/O and nothing
awaited: 202 with the identity headers, 401 (or, for a browser with ?redirect=true, a
redirect to log in), or 403.  A Gateway API external-auth check (GEP-1494, HTTP) asks
EXT_AUTH_PREFIX + the original path instead, and gets the same decision with 200 to allow
and a login redirect for browsers.  Broker paths on the preview host (ticket, sign-out,
start) are answered here too, always with a non-2xx answer, which the proxy hands to the
browser.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.responses import Response

from broker.cookies import cookie_value
from broker.core import Broker
from broker.errors import Forbidden
from broker.forwarded import (
    FORWARD_AUTH_HEADERS,
    GATEWAY_HEADERS,
    READERS,
    PreviewRequest,
    from_gateway,
)
from broker.identity import REFUSAL_TEXT, Identity, authorize
from broker.identity_text import header_value
from broker.preview import PreviewEndpoints
from broker.query import parse_params
from broker.responses import NO_STORE_RAW, PrebuiltResponse
from broker.sessions import TICKET_PATH
from broker.signout import SignOut

# The 401 is the same for every request: its headers are built once (a forged cookie must cost
# about what a valid one does, and this answer is most of what refusing one costs).
UNAUTHORIZED = PrebuiltResponse(401, [(b"content-type", b"text/plain; charset=utf-8"), *NO_STORE_RAW],
                                b"sign in required")


class ForwardAuth:
    def __init__(self, broker: Broker, preview: PreviewEndpoints, signout: SignOut) -> None:
        self.b = broker
        self.preview = preview
        self.signout = signout
        kind = broker.settings.forward_auth_proxy
        self.headers = FORWARD_AUTH_HEADERS[kind]
        self.gateway_headers = GATEWAY_HEADERS
        self._read = READERS[kind]
        self._allow_http = broker.settings.allow_http
        self._public_host = broker.public_host  # never a preview, whatever the allowlist says
        # Label lookups cost more than the increments on the hot path: bind them once.
        self._result = {
            r: broker.metrics.auth_checks.labels(r) for r in ("ok", "unauthenticated", "forbidden", "host_not_live")
        }

    def decide(self, headers: Mapping[str, str], query: str) -> Response:
        """Decide one forward-auth request (/oauth2/auth) from its headers alone."""
        return self._decide(self._read(headers), headers, "redirect=true" in query.split("&"), 202)

    def decide_gateway(self, headers: Mapping[str, str], path: str, query: str, method: str) -> Response:
        """Decide one external-auth check: the original request, its path under EXT_AUTH_PREFIX."""
        preview = from_gateway(headers, path, query, method, self._allow_http)
        return self._decide(preview, headers, True, 200)

    def _decide(self, preview: PreviewRequest, headers: Mapping[str, str], redirect: bool, allow: int) -> Response:
        if preview.scheme != "https" and not self._allow_http:
            # Never a session over plain http: no cookie is read, set or refreshed.
            raise Forbidden("https_required", "This preview environment is served over https only.",
                            host=preview.host)
        if preview.path.startswith("/oauth2/"):
            special = self._special(preview, headers)
            if special is not None:
                return special
        if preview.host not in self.b.allowlist or preview.host == self._public_host:
            self._result["host_not_live"].inc()
            raise Forbidden("host_not_live", "This preview environment is not live.", host=preview.host)
        names = self.b.cookie_names(preview.scheme)
        cookies = headers.get("cookie", "")
        token = cookie_value(cookies, names.session)
        if not token:
            return self._unauthenticated(preview, headers, redirect, cookies)
        session, why = self.b.sessions.check(token, preview.host)
        if session is None:
            # Anyone can send a forged cookie, as often as they like: count each, log a few.
            self.b.count_refusal("auth", f"session_{why}")
            self.b.bounded_log.refused("auth", f"session_{why}", 401, host=preview.host, level=logging.INFO)
            return self._unauthenticated(preview, headers, redirect, cookies)
        answer = session.answer
        if answer is None:
            # The policy is fixed for the process's life: decide once per session, keep the answers.
            decision = authorize(session.identity, self.b.policy)
            if decision.allowed:
                raw = _identity_raw_headers(session.identity)
                answer = session.answer = {202: PrebuiltResponse(202, raw), 200: PrebuiltResponse(200, raw)}
            else:
                answer = session.answer = decision.reason
        if type(answer) is str:
            self._result["forbidden"].inc()
            raise Forbidden(f"not_authorized_{answer}", "This account is not allowed into previews: "
                            + REFUSAL_TEXT.get(answer, "the rules do not admit it."),
                            host=preview.host)
        self._result["ok"].inc()
        return answer[allow]

    def _unauthenticated(self, preview: PreviewRequest, headers: Mapping[str, str], redirect: bool,
                         cookies: str) -> Response:
        self._result["unauthenticated"].inc()
        if redirect and _wants_html(preview, headers):
            return self.b.login_redirect(preview, preview.url,
                                         cookie_value(cookies, self.b.cookie_names(preview.scheme).login))
        return UNAUTHORIZED

    def _special(self, preview: PreviewRequest, headers: Mapping[str, str]) -> Response | None:
        """Broker paths on the preview host, reached through forward auth."""
        path = preview.path
        if path not in (TICKET_PATH, "/oauth2/sign_out", "/oauth2/start"):
            return None
        q = parse_params(preview.query)
        login = cookie_value(headers.get("cookie", ""), self.b.cookie_names(preview.scheme).login)
        if path == TICKET_PATH:
            return self.preview.redeem(preview, q, login)
        if path == "/oauth2/start":
            return self.preview.start(preview, q, login)
        return self.signout.on_preview(preview, q, headers.get("origin"), headers.get("sec-fetch-site"))


def _wants_html(preview: PreviewRequest, headers: Mapping[str, str]) -> bool:
    return preview.method in ("GET", "HEAD") and "text/html" in headers.get("accept", "")


def _identity_raw_headers(identity: Identity) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in identity_headers(identity).items()]


def identity_headers(identity: Identity) -> dict[str, str]:
    """The headers the app reads.  Values are exact and unambiguous (identity_text.header_value):
    nothing is stripped, so two people never share a value, and no header line can be smuggled."""
    headers = {"X-Auth-Request-User": header_value(identity.user)}
    if identity.email:
        headers["X-Auth-Request-Email"] = header_value(identity.email)
    if identity.groups:
        headers["X-Auth-Request-Groups"] = ",".join(header_value(g) for g in identity.groups)
    return headers

"""The broker's endpoints on a preview host: login start, ticket, userinfo (sign-out: signout.py).

They are reached two ways, with the same rules: routed straight to the broker (nginx-style
`/oauth2/` paths of each preview host), or through forward auth, where the broker answers the
forward-auth request itself (Traefik returns any non-2xx answer to the browser as is).  So
nothing here may answer 2xx through forward auth: that would let the request through to
the app instead.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse, Response

from broker.cookies import set_cookie_header
from broker.core import Broker
from broker.errors import BadRequest
from broker.forwarded import PreviewRequest
from broker.redirect import Verdict
from broker.responses import NO_STORE, redirect
from broker.tokens import TokenError

log = logging.getLogger("preview_broker.broker")


class PreviewEndpoints:
    def __init__(self, broker: Broker) -> None:
        self.b = broker

    def require_https(self, preview: PreviewRequest) -> None:
        if preview.scheme != "https" and not self.b.settings.allow_http:
            raise BadRequest("https_required", "Preview environments are served over https only.",
                             host=preview.host)

    def same_host_target(self, preview: PreviewRequest, rd: str | None) -> Verdict:
        """`rd` (relative ones resolve against the preview) if it is an address on this same preview."""
        target = self.b.check(rd or "/", preview.origin)
        if not target or target.host != preview.host:
            reason = target.reason if not target else "other_host"
            raise BadRequest(f"redirect_{reason}", "rd is not an address on this preview environment.")
        return target

    def start(self, preview: PreviewRequest, q: dict[str, str], login_cookie: str | None) -> Response:
        """/oauth2/start on the preview host: set its login cookie, continue on the broker host."""
        self.require_https(preview)
        target = self.same_host_target(preview, q.get("rd"))
        return self.b.login_redirect(preview, target.url, login_cookie)

    def redeem(self, preview: PreviewRequest, q: dict[str, str], login_cookie: str | None) -> Response:
        """/oauth2/ticket: turn the one-time ticket into the host-only session cookie."""
        self.require_https(preview)
        try:
            ticket = self.b.sessions.redeem_ticket(q.get("ticket"), preview.host, login_cookie, self.b.clock())
        except TokenError as exc:
            if exc.reason == "ticket_browser_mismatch":
                raise BadRequest(exc.reason, "This sign-in link was made for another browser (or cookies are "
                                 "blocked here). Open the preview again to sign in.", host=preview.host) from None
            raise BadRequest(
                exc.reason if exc.reason.startswith("ticket") else f"ticket_{exc.reason}",
                "This sign-in link is invalid, expired or already used. Open the preview again to sign in.",
                host=preview.host,
            ) from None
        target = self.b.recheck(ticket.target)
        if target.host != preview.host:
            raise BadRequest("ticket_wrong_host", "This sign-in link belongs to another preview.")
        session = set_cookie_header(
            self.b.cookie_names(preview.scheme).session,
            self.b.sessions.issue(preview.host, ticket.identity),
            max_age=self.b.settings.session_ttl,
            secure=preview.scheme == "https",
            domain=self.b.settings.cookie_domain or None,
        )
        self.b.metrics.logins_completed.labels("gate").inc()
        log.info("session_issued", extra={"host": preview.host, "user": ticket.identity.user})
        return redirect(target.url, [session])

    def userinfo(self, preview: PreviewRequest | None, session_cookie) -> Response:  # type: ignore[no-untyped-def]
        identity = None
        if preview is not None and self.b.is_live(preview.host):
            identity = self.b.sessions.verify(session_cookie(self.b.cookie_names(preview.scheme).session),
                                              preview.host)
        if identity is None or preview is None:
            return JSONResponse({"error": "not signed in"}, 401, headers=NO_STORE)
        return JSONResponse(
            {"user": identity.user, "email": identity.email, "groups": list(identity.groups), "host": preview.host},
            headers=NO_STORE,
        )

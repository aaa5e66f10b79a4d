"""Sign-out, on a preview host and on the broker's own host.

It changes state only by POST: any page can make a browser send a GET (an image, a link), so
a GET shows the broker's page that asks, and only a POST from that page, or from the
preview's own pages, clears the session.  `Origin` says where a POST came from; every
preview is same-site with every other, so Sec-Fetch-Site alone cannot.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode, urlsplit

from starlette.responses import Response

from broker.cookies import clear_cookie_header
from broker.core import Broker, origin_of
from broker.errors import BadRequest, Forbidden
from broker.forwarded import PreviewRequest
from broker.preview import PreviewEndpoints
from broker.responses import form_page, page, redirect

log = logging.getLogger("preview_broker.broker")


def _from(origin: str | None, fetch_site: str | None, allowed: tuple[str, ...]) -> bool:
    """Was this POST sent by a page of one of the `allowed` origins (or by no browser at all)?"""
    if origin is not None:
        return origin.lower() in allowed
    return fetch_site in (None, "same-origin")


class SignOut:
    def __init__(self, broker: Broker, preview: PreviewEndpoints) -> None:
        self.b = broker
        self.preview = preview

    def on_preview(self, preview: PreviewRequest, q: dict[str, str], origin: str | None,
                   fetch_site: str | None) -> Response:
        """/oauth2/sign_out: a GET goes to the broker's page that asks; only a POST from it, or
        from the preview's own pages, clears the session (any page could trigger a GET)."""
        target = self.preview.same_host_target(preview, q.get("rd"))
        if preview.method != "POST":
            ask = self.b.settings.public_url + "/oauth2/sign_out?" + urlencode({"rd": target.url})
            return redirect(ask)
        if not _from(origin, fetch_site, (preview.base_url.lower(), self.b.public_origin.lower())):
            raise Forbidden("sign_out_cross_origin", "Sign-out must be sent from this preview or the broker.",
                            host=preview.host)
        cleared = clear_cookie_header(
            self.b.cookie_names(preview.scheme).session,
            secure=preview.scheme == "https",
            domain=self.b.settings.cookie_domain or None,
        )
        log.info("signed_out", extra={"host": preview.host})
        return redirect(target.url, [cleared], status=303)

    def ask(self, q: dict[str, str]) -> Response:
        """The broker's page that asks (for a preview's session when `rd` names one, else its own)."""
        rd = q.get("rd")
        if rd:
            target = self.b.check(rd)
            if not target:
                raise BadRequest(f"redirect_{target.reason}", "rd is not an address of a live preview environment.")
            parts = urlsplit(target.url)
            back = parts.path + (f"?{parts.query}" if parts.query else "")
            return form_page("Sign out?", "Sign out of this preview environment:", host=target.host,
                             action=origin_of(target.url) + "/oauth2/sign_out?" + urlencode({"rd": back}),
                             fields={}, button="Sign out")
        return form_page("Sign out?", "Sign out of the login broker (logins in progress are abandoned).",
                         action="/oauth2/sign_out", fields={}, button="Sign out")

    def on_broker(self, origin: str | None, fetch_site: str | None) -> Response:
        if not _from(origin, fetch_site, (self.b.public_origin.lower(),)):
            raise Forbidden("sign_out_cross_origin", "Sign-out must be sent from the broker's own page.")
        secure = self.b.settings.secure_cookies
        cleared = [clear_cookie_header(self.b.broker_cookies.bind, secure=secure)]
        if self.b.settings.cookie_domain:
            # One session covers every preview (and reaches this host too): signing out here ends it.
            cleared.append(clear_cookie_header(self.b.broker_cookies.session, secure=secure,
                                               domain=self.b.settings.cookie_domain))
        log.info("signed_out", extra={"host": self.b.public_host})
        return page(200, "Signed out", "You are signed out of the login broker.", cookies=cleared)

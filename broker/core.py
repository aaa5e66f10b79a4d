"""What every endpoint needs, built once at start-up: settings, allowlist, provider, keys, memory.

The endpoint groups (login, preview, forward_auth, operations) hold a Broker and add the
handlers of their flow; the policy they apply lives in pure modules (redirect, identity,
loginstate, sessions), the I/O at the provider and allowlist edges.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from broker.allowlist import AllowlistSource
from broker.boundedlog import BoundedLog
from broker.cookies import CookieNames, request_cookie, set_cookie_header
from broker.errors import BrokerError, Gone
from broker.forwarded import DIRECT_HEADERS, PreviewRequest, from_direct, pick_headers
from broker.groupfilter import GroupFilter
from broker.identity import Policy
from broker.loginstate import login_hash, new_value, valid_value
from broker.metrics import Metrics
from broker.providers.base import Provider
from broker.redirect import Origin, Verdict, check_redirect
from broker.replay import ReplayGuard
from broker.responses import page, redirect
from broker.sessions import SessionCodec
from broker.settings import BrokerSettings
from broker.tokens import make_serializers
from foundation.clock import Clock, system_clock

log = logging.getLogger("preview_broker.broker")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Broker:
    def __init__(
        self,
        settings: BrokerSettings,
        allowlist: AllowlistSource,
        provider: Provider,
        *,
        clock: Clock = system_clock,
        metrics: Metrics | None = None,
        bounded_log: BoundedLog | None = None,
    ) -> None:
        self.settings = settings
        self.allowlist = allowlist
        self.provider = provider
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.bounded_log = bounded_log or BoundedLog(log)
        self.serializers = make_serializers(settings.secret_keys, clock, settings.verify_keys)
        # Gate states (recorded after the IdP accepted the code) and tickets (after they
        # redeemed in their own browser): only signed-in users add entries here.
        self.gate_guard = ReplayGuard(clock)
        # Relay states, recorded at callback: anyone can add entries; a flood only evicts.
        self.relay_guard = ReplayGuard(clock)
        self.policy = Policy.build(
            settings.allowed_email_domains, settings.allowed_groups, settings.github_orgs + settings.github_teams
        )
        self.sessions = SessionCodec(
            self.serializers,
            self.gate_guard,
            session_ttl=settings.session_ttl,
            ticket_ttl=settings.ticket_ttl,
            cookie_domain=settings.cookie_domain,
        )
        self.groups = GroupFilter(self.policy, settings.header_groups)
        self.extra_ports = frozenset(settings.allowed_ports)
        self.public_host = settings.public_host
        self.public_origin = origin_of(settings.public_url)
        parent = bool(settings.cookie_domain)
        self.broker_cookies = CookieNames.for_scheme(settings.secure_cookies, parent)
        self._cookie_names = {s: CookieNames.for_scheme(s, parent) for s in (True, False)}
        self._refused = {}  # (endpoint, reason) -> its counter, bound once

    # --- policy helpers ---------------------------------------------------
    def check(self, target: str | None, origin: Origin | None = None) -> Verdict:
        verdict = check_redirect(
            target or "",
            self.allowlist,
            allow_http=self.settings.allow_http,
            extra_ports=self.extra_ports,
            origin=origin,
        )
        if verdict.host == self.public_host:
            # Whatever the allowlist says (a controller without PUBLIC_URL may publish it): the
            # broker's own host is never a preview, so never a place to send a login or a code.
            return Verdict(False, "broker_host")
        return verdict

    def is_live(self, host: str) -> bool:
        """A live preview host: in the allowlist, and not the broker's own."""
        return host != self.public_host and host in self.allowlist

    def recheck(self, url: str) -> Verdict:
        """The environment may have been deleted while the user was at the IdP."""
        target = self.check(url)
        if not target:
            host = urlsplit(url).hostname or "the preview"
            raise Gone(
                "target_gone",
                f"The preview environment {host} no longer exists, so the login cannot return there.",
                host=host,
            )
        return target

    def cookie_names(self, scheme: str) -> CookieNames:
        """Without ALLOW_HTTP only the __Host-/__Secure- names exist, whatever scheme a request claims."""
        return self._cookie_names[scheme == "https" or not self.settings.allow_http]

    def count_refusal(self, endpoint: str, reason: str) -> None:
        counter = self._refused.get((endpoint, reason))
        if counter is None:
            counter = self._refused[(endpoint, reason)] = self.metrics.refused.labels(endpoint, reason)
        counter.inc()

    def refuse(self, endpoint: str, err: BrokerError) -> Response:
        self.count_refusal(endpoint, err.reason)
        context = dict(err.context)
        host = str(context.pop("host", ""))
        self.bounded_log.refused(endpoint, err.reason, err.status, host=host, **context)
        return page(err.status, err.title, err.message, err.reason)

    # --- requests routed straight to the broker -------------------------------
    def preview_request(self, request: Request) -> PreviewRequest | None:
        """The preview host a direct request arrived on, or None on the broker's own host."""
        headers = pick_headers(request.scope["headers"], DIRECT_HEADERS)
        raw = headers.get("x-forwarded-host") or headers.get("host") or ""
        if raw.partition(":")[0] == self.public_host:
            return None  # the common case, decided without parsing
        try:
            req = from_direct(headers, request.url.scheme, request.url.path, request.url.query, request.method)
        except BrokerError:
            return None
        return None if req.host == self.public_host else req

    def cookie(self, request: Request, name: str) -> str | None:
        return request_cookie(request.scope["headers"], name)

    # --- starting a login on a preview host ----------------------------------
    def login_redirect(self, preview: PreviewRequest, url: str, login_cookie: str | None) -> Response:
        """Send the browser from the preview host to the broker's /oauth2/start, to come back to `url`.

        The preview host's response sets the login cookie (kept if the browser has one: two tabs
        may log in at once); its hash goes along, into `state`, then into the ticket.
        """
        value = login_cookie if valid_value(login_cookie) else new_value()
        cookie = set_cookie_header(self.cookie_names(preview.scheme).login, value,  # type: ignore[arg-type]
                                   max_age=self.settings.state_ttl + self.settings.ticket_ttl,
                                   secure=preview.scheme == "https")
        start = self.settings.public_url + "/oauth2/start?" + urlencode({"rd": url, "pl": login_hash(value)})
        return redirect(start, [cookie])

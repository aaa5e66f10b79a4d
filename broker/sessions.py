"""Gate-mode sessions and the one-time tickets that deliver them.

A session cookie is set by the preview host's own response (host-only: no Domain
attribute, `__Host-` prefix over https), and its signed payload names that host.  A
cookie copied from pr-1 into a request for pr-2 therefore fails twice: the browser would
not send it, and the broker refuses its host claim.

The cookie cannot be set by the broker's callback (a different host), so the callback
mints a ticket: a signed, host-bound token valid for seconds, redeemed on the preview host
in exchange for the cookie, and only in the browser whose login cookie it names.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from broker.identity import Identity
from broker.loginstate import login_hash, same, valid_value
from broker.replay import ReplayGuard
from broker.tokens import (
    Serializers,
    SessionSignature,
    TokenError,
    dump,
    load,
    load_with_timestamp,
)
from foundation.hosts import is_under

TICKET_PATH = "/oauth2/ticket"
MAX_COOKIE_BYTES = 3800
# The ticket travels in a URL to the preview host: it must pass the broker's own parameter limit
# (query.MAX_PARAM_LENGTH) and every proxy's request-line limit (nginx's default is 8 KiB).
MAX_TICKET_BYTES = 3800
VERIFIED_CACHE_SIZE = 50_000


class Verified:
    """A session token that verified: who it names, for which host, since when.  `answer` is
    forward auth's to keep: the decision for this identity under the process's (fixed) policy."""

    __slots__ = ("identity", "scope", "signed_at", "answer")

    def __init__(self, identity: Identity, scope: str, signed_at: int) -> None:
        self.identity = identity
        self.scope = scope
        self.signed_at = signed_at
        self.answer: Any = None


@dataclass(frozen=True, slots=True)
class Ticket:
    host: str
    target: str
    identity: Identity


def _identity_payload(identity: Identity) -> dict[str, Any]:
    payload = {"u": identity.user, "e": identity.email, "v": identity.email_verified, "g": list(identity.groups)}
    if identity.groups_overage:  # only then: every other login's cookie keeps its size
        payload["o"] = True
    return payload


def _identity_from(payload: dict[str, Any]) -> Identity:
    groups = payload.get("g") or []
    return Identity(
        user=str(payload.get("u", "")),
        email=str(payload.get("e", "")),
        email_verified=payload.get("v") is True,
        groups=tuple(str(g) for g in groups) if isinstance(groups, list) else (),
        groups_overage=payload.get("o") is True,
    )


class SessionCodec:
    def __init__(
        self,
        serializers: Serializers,
        guard: ReplayGuard,
        *,
        session_ttl: int,
        ticket_ttl: int,
        cookie_domain: str = "",
    ) -> None:
        self._s = serializers
        self._guard = guard
        self.session_ttl = session_ttl
        self.ticket_ttl = ticket_ttl
        self.cookie_domain = cookie_domain
        self._signature = SessionSignature(serializers.session, session_ttl, serializers.clock)
        # A token that verified once verifies forever under the same keys, so only its age (and
        # host) is checked again: the hot path is a dict lookup.
        self._verified: dict[str, Verified] = {}

    # --- sessions -------------------------------------------------------
    def issue(self, host: str, identity: Identity) -> str:
        """The session token for `host`.  The login already carries only the groups that are read
        (groupfilter.py) and was refused if it would not fit (`fits`)."""
        return dump(self._s.session, {"h": self.cookie_domain or host, **_identity_payload(identity)})

    def fits(self, ticket: str, host: str, identity: Identity) -> bool:
        """Whether the ticket fits a URL and the session it becomes fits a cookie."""
        return len(ticket) <= MAX_TICKET_BYTES and len(self.issue(host, identity)) <= MAX_COOKIE_BYTES

    def verify(self, token: str | None, host: str) -> Identity | None:
        """The identity in a session cookie valid for `host`, else None."""
        entry, _ = self.check(token, host)
        return entry.identity if entry is not None else None

    def check(self, token: str | None, host: str) -> tuple[Verified | None, str]:
        """(the verified session, "ok") for a session cookie valid for `host`, else (None, why not)."""
        if not token:
            return None, "missing"
        now = int(self._s.clock())
        cached = self._verified.get(token)
        if cached is None:
            reason = self._signature.check(token)
            if reason is not None:
                return None, reason
            try:
                payload, signed_at = load_with_timestamp(self._s.session, token, self.session_ttl)
            except TokenError as exc:
                return None, exc.reason
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()  # simple and bounded; it refills at one HMAC per session
            cached = self._verified[token] = Verified(_identity_from(payload), str(payload.get("h", "")), signed_at)
        # The rule itsdangerous applies: older than max_age, or from the future, is expired.
        if not 0 <= now - cached.signed_at <= self.session_ttl:
            return None, "expired"
        scope = cached.scope
        if scope == host:
            return cached, "ok"
        if self.cookie_domain and scope == self.cookie_domain and is_under(host, (self.cookie_domain,)):
            return cached, "ok"
        return None, "other_host"

    # --- tickets ----------------------------------------------------------
    def mint_ticket(self, host: str, target: str, identity: Identity, login: str) -> str:
        """A ticket for `host`, redeemable only where the login cookie hashes to `login`."""
        return dump(
            self._s.ticket,
            {"h": host, "t": target, "j": secrets.token_urlsafe(16), "p": login, **_identity_payload(identity)},
        )

    def redeem_ticket(self, token: str | None, host: str, login_cookie: str | None, now: float) -> Ticket:
        """Verify a ticket for `host` in the browser holding `login_cookie`, and burn it.

        Raises TokenError with a reason.  Only a ticket that passed every check is recorded,
        so no one but a signed-in user, in their own browser, adds to the replay memory.
        """
        payload = load(self._s.ticket, token, self.ticket_ttl)
        if payload.get("h") != host:
            raise TokenError("ticket_wrong_host")
        bound = str(payload.get("p", ""))
        if not valid_value(login_cookie) or not same(login_hash(login_cookie or ""), bound):
            raise TokenError("ticket_browser_mismatch")
        jti = payload.get("j")
        if not isinstance(jti, str) or not self._guard.first_use("t:" + jti, now + self.ticket_ttl + 1):
            raise TokenError("ticket_replayed")
        return Ticket(host, str(payload.get("t", "")), _identity_from(payload))

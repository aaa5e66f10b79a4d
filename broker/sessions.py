"""Gate-mode sessions and the one-time tickets that deliver them.

A session cookie is set by the preview host's own response (host-only: no Domain
attribute, `__Host-` prefix over https), and its signed payload names that
host.  A cookie copied from pr-1 into a request for pr-2 therefore fails twice:
the browser would not send it, and the broker refuses its host claim.

The cookie cannot be set by the broker's callback (a different host), so the
callback mints a ticket: a signed, host-bound token valid for seconds and
redeemed once, on the preview host, in exchange for the cookie.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from broker.hosts import is_under
from broker.identity import Identity
from broker.replay import ReplayGuard
from broker.tokens import Serializers, TokenError, dump, load, load_with_timestamp

TICKET_PATH = "/oauth2/ticket"
MAX_COOKIE_BYTES = 3800
VERIFIED_CACHE_SIZE = 50_000


@dataclass(frozen=True, slots=True)
class CookieNames:
    session: str
    bind: str

    @classmethod
    def for_scheme(cls, secure: bool, parent_domain: bool) -> CookieNames:
        # __Host- makes the browser itself refuse a Domain attribute or a
        # non-Secure cookie of that name: host-only is enforced client-side too.
        if not secure:
            return cls("pb_session", "pb_bind")
        return cls("__Secure-pb_session" if parent_domain else "__Host-pb_session", "__Host-pb_bind")


@dataclass(frozen=True, slots=True)
class Ticket:
    host: str
    target: str
    identity: Identity


def _identity_payload(identity: Identity) -> dict[str, Any]:
    return {"u": identity.user, "e": identity.email, "v": identity.email_verified, "g": list(identity.groups)}


def _identity_from(payload: dict[str, Any]) -> Identity:
    groups = payload.get("g") or []
    return Identity(
        user=str(payload.get("u", "")),
        email=str(payload.get("e", "")),
        email_verified=payload.get("v") is True,
        groups=tuple(str(g) for g in groups),
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
        relevant_groups: frozenset[str] = frozenset(),
    ) -> None:
        self._s = serializers
        self._guard = guard
        self.session_ttl = session_ttl
        self.ticket_ttl = ticket_ttl
        self.cookie_domain = cookie_domain
        self._relevant = relevant_groups
        # token -> (payload, signed_at). Verifying an HMAC and decoding base64/JSON on every
        # forward-auth request is the hot path's main cost; a token that verified once verifies
        # forever under the same keys, so only its age (and host) is checked again.
        self._verified: dict[str, tuple[Identity, str, int]] = {}

    # --- sessions -------------------------------------------------------
    def issue(self, host: str, identity: Identity) -> str:
        scope = self.cookie_domain or host
        token = dump(self._s.session, {"h": scope, **_identity_payload(identity)})
        if len(token) > MAX_COOKIE_BYTES and self._relevant:
            # Too many groups for a cookie: keep only those the policy looks at.
            kept = tuple(g for g in identity.groups if g.casefold() in self._relevant)
            token = dump(self._s.session, {"h": scope, **_identity_payload(_replace_groups(identity, kept))})
        return token

    def verify(self, token: str | None, host: str) -> Identity | None:
        """The identity in a session cookie valid for `host`, else None."""
        verified = self._verify(token)
        if verified is None:
            return None
        identity, scope = verified
        if scope == host:
            return identity
        if self.cookie_domain and scope == self.cookie_domain and is_under(host, (self.cookie_domain,)):
            return identity
        return None

    def _verify(self, token: str | None) -> tuple[Identity, str] | None:
        """(identity, host scope) of a valid session token, else None."""
        if not token:
            return None
        now = int(self._s.clock())
        cached = self._verified.get(token)
        if cached is not None:
            identity, scope, signed_at = cached
            age = now - signed_at
            # The same rule itsdangerous applies: older than max_age or from the future is expired.
            return (identity, scope) if 0 <= age <= self.session_ttl else None
        try:
            payload, signed_at = load_with_timestamp(self._s.session, token, self.session_ttl)
        except TokenError:
            return None
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # simple and bounded; it refills at one HMAC per session
        identity, scope = _identity_from(payload), str(payload.get("h", ""))
        self._verified[token] = (identity, scope, signed_at)
        return identity, scope

    # --- tickets ----------------------------------------------------------
    def mint_ticket(self, host: str, target: str, identity: Identity) -> str:
        return dump(
            self._s.ticket,
            {"h": host, "t": target, "j": secrets.token_urlsafe(16), **_identity_payload(identity)},
        )

    def redeem_ticket(self, token: str | None, host: str, now: float) -> Ticket:
        """Verify a ticket for `host` and burn it; raises TokenError with a reason."""
        payload = load(self._s.ticket, token, self.ticket_ttl)
        if payload.get("h") != host:
            raise TokenError("ticket_wrong_host")
        jti = payload.get("j")
        if not isinstance(jti, str) or not self._guard.first_use("t:" + jti, now + self.ticket_ttl + 1):
            raise TokenError("ticket_replayed")
        return Ticket(host, str(payload.get("t", "")), _identity_from(payload))


def _replace_groups(identity: Identity, groups: tuple[str, ...]) -> Identity:
    return Identity(identity.user, identity.email, identity.email_verified, groups)

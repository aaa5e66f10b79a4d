"""Login endpoints on the broker's host: gate start, relay start (with its confirmation), the master callback.

Gate mode: the broker is the OAuth client.  A login begins on the preview host (which sets
the login cookie, see preview.py), continues here with the target and the cookie's hash,
goes to the IdP with PKCE and an OIDC nonce derived from this host's bind cookie, and
comes back to /oauth2/callback, which exchanges the code and mints a one-time ticket.

Relay mode: a preview app is its own OAuth client (listed in RELAY_CLIENT_IDS, never the
broker's gate client).  The broker forwards only documented OAuth/OIDC parameters, wraps
the app's state in a signed envelope, and at callback hands code and state to the app.
A relay login that did not start on the preview it returns to is confirmed by the person
first, on a page of the broker's that names that preview.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from broker.cookies import set_cookie_header
from broker.core import Broker, origin_of
from broker.errors import BadRequest, Forbidden
from broker.identity import REFUSAL_TEXT, Identity, authorize
from broker.identity_text import hidden_character
from broker.loginstate import (
    bind_hash,
    derive,
    new_value,
    s256,
    same,
    valid_hash,
    valid_value,
)
from broker.query import parse_params, query_of
from broker.redirect import Verdict
from broker.responses import form_page, redirect
from broker.sessions import TICKET_PATH
from broker.tokens import TokenError, dump, load

log = logging.getLogger("preview_broker.broker")

MAX_APP_STATE = 2048
MAX_FORM_BYTES = 16 * 1024
# What a relay app may send on to its IdP: the OAuth 2.0 / OIDC / PKCE authorization request
# parameters, and the provider extensions people use (Google's, GitHub's).  Anything else is
# refused, so nothing can steer the IdP (request objects, response_mode) around the broker.
RELAY_FORWARDED = frozenset({
    "client_id", "response_type", "scope", "code_challenge", "code_challenge_method", "nonce", "prompt",
    "login_hint", "max_age", "ui_locales", "claims_locales", "acr_values", "display", "id_token_hint",
    "access_type", "include_granted_scopes", "hd", "allow_signup", "login",
})
# Parameters the broker owns in relay mode: return_to and state are consumed, redirect_uri is the master one.
RELAY_OWNED = frozenset({"return_to", "state", "redirect_uri"})
# Parameters handed back to the relay app at callback, besides its state.
RELAY_RETURNED = ("code", "error", "error_description", "error_uri", "iss")
# A return_to already carrying one of these would give the app two of each.
RETURN_TO_RESERVED = frozenset({*RELAY_RETURNED, "state", "session_state"})


def append_query(url: str, params: dict[str, str]) -> str:
    base, _, fragment = url.partition("#")
    sep = "&" if "?" in base else "?"
    return base + sep + urlencode(params, quote_via=quote) + (f"#{fragment}" if fragment else "")


def started_on(origin_header: str, referer: str, target_origin: str) -> bool:
    """Did the browser come here from the page of `target_origin` itself?

    Browsers set Origin and Referer; a page cannot forge them for another site's origin.  A
    missing one (a link pasted into the address bar, a no-referrer policy) counts as "no".
    """
    if origin_header:
        return origin_header.lower() == target_origin
    if referer:
        try:
            return origin_of(referer).lower() == target_origin
        except ValueError:
            return False
    return False


class Login:
    def __init__(self, broker: Broker) -> None:
        self.b = broker
        self._gate_url = ("", "")  # (authorization endpoint, its URL with gate mode's fixed parameters)

    # --- cookies of the broker host -------------------------------------------------
    def bind_value(self, request: Request) -> str:
        current = self.b.cookie(request, self.b.broker_cookies.bind)
        return current if valid_value(current) else new_value()  # type: ignore[return-value]

    def bind_cookie(self, bind: str) -> bytes:
        # Refreshed on every start, so a login begun now can finish within STATE_TTL.
        return set_cookie_header(self.b.broker_cookies.bind, bind, max_age=self.b.settings.state_ttl + 60,
                                 secure=self.b.settings.secure_cookies)

    # --- gate mode ------------------------------------------------------------------
    async def start(self, request: Request, preview_start) -> Response:  # type: ignore[no-untyped-def]
        q = parse_params(query_of(request.scope))
        preview = self.b.preview_request(request)
        if preview is not None:  # /oauth2/start on a preview host, routed straight here
            return preview_start(preview, q, self.b.cookie(request, self.b.cookie_names(preview.scheme).login))
        target = self.b.check(q.get("rd"))
        if not target:
            raise BadRequest(f"redirect_{target.reason}", "rd is not an address of a live preview environment.")
        login = q.get("pl", "")
        if not valid_hash(login):
            # A gate login begins on the preview host, which sets the cookie its ticket will need.
            return redirect(origin_of(target.url) + "/oauth2/start?" + urlencode({"rd": target.url}))
        bind = self.bind_value(request)
        jti = secrets.token_urlsafe(16)
        state = dump(self.b.serializers.state, {"m": "g", "t": target.url, "j": jti, "b": bind_hash(bind), "p": login})
        # state, the challenge and the nonce are base64url and '.': nothing in them needs quoting.
        url = f"{await self._gate_authorize_url()}&state={state}&code_challenge={s256(derive('pkce', bind, jti))}"
        if self.b.provider.uses_nonce:
            url += "&nonce=" + derive("nonce", bind, jti)
        self.b.metrics.logins_started.labels("gate").inc()
        # Anyone can start logins without an account: counted always, logged at a bounded rate.
        self.b.bounded_log.log(logging.INFO, "login_started", "gate", target.host, mode="gate")
        return redirect(url, [self.bind_cookie(bind)])

    async def _gate_authorize_url(self) -> str:
        """The authorization URL with gate mode's fixed parameters, encoded once per endpoint."""
        endpoint = await self.b.provider.authorization_endpoint()
        if self._gate_url[0] != endpoint:
            fixed = {
                "response_type": "code",
                "client_id": self.b.settings.client_id,
                "redirect_uri": self.b.settings.callback_url,
                **self.b.provider.gate_params(),
            }
            self._gate_url = (endpoint, append_query(endpoint, fixed))
        return self._gate_url[1]

    # --- relay mode -----------------------------------------------------------------
    def _relay_request(self, query: str) -> tuple[Verdict, dict[str, str], str]:
        """Validate a relay start: (target, parameters to forward, the app's state), or BadRequest."""
        q = parse_params(query)
        target = self.b.check(q.get("return_to"))
        if not target:
            raise BadRequest(f"redirect_{target.reason}", "return_to is not an address of a live preview environment.")
        if RETURN_TO_RESERVED.intersection(k for k, _ in parse_qsl(urlsplit(target.url).query, keep_blank_values=True)):
            raise BadRequest("relay_return_to_reserved",
                             "return_to must not carry code, state, iss or error parameters: the broker adds them.")
        client_id = q.get("client_id", "")
        if client_id not in self.b.settings.relay_clients:
            raise BadRequest("relay_unknown_client", "client_id is not a client this broker relays for.")
        if q.get("response_type") != "code":
            raise BadRequest("relay_response_type", "Only the authorization-code flow (response_type=code) is relayed.")
        redirect_uri = q.get("redirect_uri")
        if redirect_uri is not None and redirect_uri != self.b.settings.callback_url:
            raise BadRequest(
                "relay_redirect_uri",
                f"redirect_uri must be the broker's callback {self.b.settings.callback_url} (or left out).",
            )
        app_state = q.get("state", "")
        if len(app_state) > MAX_APP_STATE:
            raise BadRequest("oversized_param", "state is too long.")
        unknown = sorted(set(q) - RELAY_FORWARDED - RELAY_OWNED)
        if unknown:
            raise BadRequest("relay_param_not_allowed",
                             f"The parameter {unknown[0][:40]!r} is not relayed (see the broker's relay documentation).")
        forwarded = {k: v for k, v in q.items() if k in RELAY_FORWARDED}
        return target, forwarded, app_state

    async def relay(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._relay_confirmed(request)
        query = query_of(request.scope)
        target, forwarded, app_state = self._relay_request(query)
        headers = request.headers
        if started_on(headers.get("origin", ""), headers.get("referer", ""), origin_of(target.url).lower()):
            return await self._relay_go(request, target, forwarded, app_state)
        return self._relay_confirmation(request, query, target, forwarded["client_id"])

    def _relay_confirmation(self, request: Request, query: str, target: Verdict, client_id: str) -> Response:
        bind = self.bind_value(request)
        csrf = dump(self.b.serializers.confirm, {"b": bind_hash(bind), "q": _digest(query)})
        self.b.bounded_log.log(logging.INFO, "relay_confirmation_shown", "relay", target.host, client_id=client_id[:64])
        return form_page(
            "Sign in to a preview?",
            f"A link asks you to sign in with the app client {client_id[:64]!r} and send the login to this "
            "preview environment. Continue only if you meant to sign in there: its code will receive your login.",
            host=target.host, action="/oauth2/relay", fields={"query": query, "csrf": csrf},
            button="Continue to sign in", cookies=[self.bind_cookie(bind)],
        )

    async def _relay_confirmed(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin.lower() != self.b.public_origin.lower():
            raise Forbidden("relay_confirm_cross_origin", "This confirmation must be sent from the broker's own page.")
        form = parse_params(await _read_form(request))
        query, csrf = form.get("query", ""), form.get("csrf")
        bind = self.b.cookie(request, self.b.broker_cookies.bind)
        try:
            token = load(self.b.serializers.confirm, csrf, self.b.settings.state_ttl)
        except TokenError as exc:
            raise BadRequest(f"relay_confirm_{exc.reason}",
                             "This confirmation has expired. Start the sign-in again.") from None
        if (not valid_value(bind) or not same(bind_hash(bind or ""), str(token.get("b")))
                or not same(_digest(query), str(token.get("q")))):
            raise BadRequest("relay_confirm_mismatch", "This confirmation belongs to another browser or sign-in.")
        target, forwarded, app_state = self._relay_request(query)
        return await self._relay_go(request, target, forwarded, app_state)

    async def _relay_go(self, request: Request, target: Verdict, forwarded: dict[str, str], app_state: str) -> Response:
        bind = self.bind_value(request)
        jti = secrets.token_urlsafe(16)
        envelope = {"m": "r", "t": target.url, "s": app_state, "j": jti, "b": bind_hash(bind)}
        state = dump(self.b.serializers.state, envelope)
        authz = await self.b.provider.authorization_endpoint()
        url = append_query(authz, {**forwarded, "redirect_uri": self.b.settings.callback_url, "state": state})
        self.b.metrics.logins_started.labels("relay").inc()
        self.b.bounded_log.log(logging.INFO, "login_started", "relay", target.host, mode="relay")
        return redirect(url, [self.bind_cookie(bind)], status=303 if request.method == "POST" else 302)

    # --- the master callback ----------------------------------------------------------
    async def callback(self, request: Request) -> Response:
        q = parse_params(query_of(request.scope))
        try:
            env = load(self.b.serializers.state, q.get("state"), self.b.settings.state_ttl)
        except TokenError as exc:
            raise BadRequest(
                f"state_{exc.reason}",
                "This login link is invalid or has expired. Go back to the preview and sign in again.",
            ) from None
        bind = self.b.cookie(request, self.b.broker_cookies.bind) or ""
        if not valid_value(bind) or not same(bind_hash(bind), str(env.get("b"))):
            raise BadRequest(
                "state_browser_mismatch",
                "This login was started in another browser, or cookies are blocked. Start again from the preview.",
            )
        jti = str(env.get("j", ""))
        if not jti:
            raise BadRequest("state_malformed", "This login link is invalid. Start again from the preview.")
        if env.get("m") == "r":
            return self._relay_return(env, jti, q)
        return await self._gate_return(env, bind, jti, q)

    def _replayed(self) -> BadRequest:
        return BadRequest("state_replayed", "This login link was already used. Start again from the preview.")

    def _relay_return(self, env: dict[str, Any], jti: str, q: dict[str, str]) -> Response:
        target = self.b.recheck(str(env.get("t", "")))
        back = {k: q[k] for k in RELAY_RETURNED if k in q}
        if "code" not in back and "error" not in back:
            raise BadRequest("callback_without_code", "The identity provider sent neither a code nor an error.")
        if not self.b.relay_guard.first_use("r:" + jti, self.b.clock() + self.b.settings.state_ttl + 1):
            raise self._replayed()
        if env.get("s"):
            back["state"] = str(env["s"])
        self.b.metrics.logins_completed.labels("relay").inc()
        # Relay states are free to mint and the code is not checked here: bounded, like a refusal.
        self.b.bounded_log.log(logging.INFO, "login_returned", "relay", target.host, mode="relay",
                            error=q.get("error", "")[:64])
        return redirect(append_query(target.url, back))

    async def _gate_return(self, env: dict[str, Any], bind: str, jti: str, q: dict[str, str]) -> Response:
        if self.b.gate_guard.seen("s:" + jti):
            raise self._replayed()
        target = self.b.recheck(str(env.get("t", "")))
        login = str(env.get("p", ""))
        if "error" in q:
            raise Forbidden("idp_denied", f"The identity provider did not complete the login ({q['error'][:64]}).")
        code = q.get("code")
        if not code:
            raise BadRequest("callback_without_code", "The identity provider sent no authorization code.")
        identity = await self.b.provider.identity_from_code(
            code, code_verifier=derive("pkce", bind, jti), nonce=derive("nonce", bind, jti)
        )
        # Recorded only now that the IdP accepted the code: no anonymous request adds an entry.
        if not self.b.gate_guard.first_use("s:" + jti, self.b.clock() + self.b.settings.state_ttl + 1):
            raise self._replayed()
        # Only the groups that authorization and the identity headers read go on (groupfilter.py).
        identity = self.b.groups.carried(identity)
        refuse_hidden_characters(identity)
        decision = authorize(identity, self.b.policy)
        if not decision.allowed:
            raise Forbidden(
                f"not_authorized_{decision.reason}",
                f"You are signed in as {identity.user}, but this account is not allowed into preview environments: "
                f"{REFUSAL_TEXT.get(decision.reason, 'the rules do not admit it.')} "
                "Ask an administrator to add you, or sign in with another account.",
                user=identity.user,
            )
        target = self.b.recheck(target.url)  # the code exchange took time: check once more
        ticket = self.b.sessions.mint_ticket(target.host, target.url, identity, login)
        if not self.b.sessions.fits(ticket, target.host, identity):
            raise Forbidden(
                "too_many_groups",
                f"You are signed in as {identity.user}, but your account's groups do not fit in a browser cookie "
                f"({len(identity.groups)} groups are passed on). Ask an administrator to narrow "
                "PREVIEW_BROKER_HEADER_GROUPS.",
                user=identity.user, groups=len(identity.groups),
            )
        url = origin_of(target.url) + TICKET_PATH + "?" + urlencode({"ticket": ticket})
        log.info("login_authorized", extra={"mode": "gate", "host": target.host, "user": identity.user})
        return redirect(url)


def refuse_hidden_characters(identity: Identity) -> None:
    """A name with a character nobody sees could pose as another person's: refused, never stripped."""
    for what, text in (("user name", identity.user), ("email address", identity.email),
                       *(("group", g) for g in identity.groups)):
        hidden = hidden_character(text)
        if hidden is not None:
            raise Forbidden(
                "identity_hidden_character",
                f"Your account's {what} contains an invisible or control character ({hidden}). Preview "
                "environments refuse such names, so that no one can pose as someone else. Ask your identity "
                "provider's administrator to correct the account.",
                field=what, character=hidden.split(" ")[0],
            )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


async def _read_form(request: Request) -> str:
    """A small urlencoded form body, or BadRequest (no one sends a confirmation this large)."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        raise BadRequest("bad_form", "Expected a form (application/x-www-form-urlencoded).")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest("oversized_form", "The form is too large.")
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest("bad_form", "The form is not URL-encoded.") from None


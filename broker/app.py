"""The broker's HTTP surface: relay and gate logins through one master callback.

Handlers are thin: they parse, call pure policy (redirect.check_redirect,
identity.authorize), call the provider at the edge, and turn BrokerError into a
short page.  See DESIGN.md ("Security model") for the rules enforced here.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from broker.allowlist import AllowlistSource, StaticAllowlist
from broker.clock import Clock, system_clock
from broker.errors import BadRequest, BrokerError, Forbidden, Gone
from broker.forwarded import DIRECT_HEADERS, FORWARD_AUTH_HEADERS, PreviewRequest, from_direct, from_forward_auth
from broker.identity import Identity, Policy, authorize
from broker.metrics import Metrics
from broker.pages import NO_STORE, page
from broker.providers import make_provider
from broker.providers.base import Provider
from broker.redirect import Verdict, check_redirect
from broker.replay import ReplayGuard
from broker.sessions import TICKET_PATH, CookieNames, SessionCodec
from broker.settings import BrokerSettings
from broker.tokens import TokenError, b64url, dump, load, make_serializers
from broker.web import RawResponse, clear_cookie_header, encode_query, pick_headers, redirect, set_cookie_header

log = logging.getLogger("preview_broker.broker")

MAX_PARAMS = 40
MAX_PARAM_LENGTH = 4096
MAX_APP_STATE = 2048
# Parameters the broker owns in relay mode; the app's values are replaced or refused.
RELAY_RESERVED = {"return_to", "redirect_uri", "state"}
# Parameters handed back to the relay app at callback, besides code and state.
RELAY_RETURNED = ("code", "error", "error_description", "error_uri", "iss")
_BIND_VALUE = re.compile(r"^[A-Za-z0-9_-]{43}$")

Handler = Callable[[Request], Awaitable[Response]]


def _b64(data: bytes) -> str:
    return b64url(data).decode()


def derive(purpose: str, bind: str, jti: str) -> str:
    """A per-login secret only the browser holding the bind cookie can reproduce.

    The state envelope travels through URLs (IdP logs, browser history), so the
    PKCE verifier and OIDC nonce are derived from the HttpOnly bind cookie rather
    than stored in it.  43 characters: a valid PKCE verifier.
    """
    return _b64(hashlib.sha256(f"preview-broker|{purpose}|{bind}|{jti}".encode()).digest())


def bind_hash(bind: str) -> str:
    """What the state envelope carries of the bind cookie: enough to match it, never the cookie itself."""
    return derive("bind", bind, "")[:32]


def s256(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


def parse_params(query: str) -> dict[str, str]:
    """Query parameters, refusing what no honest client sends: repeats, floods, giants.

    Decodes exactly as parse_qsl(keep_blank_values=True, errors="strict") does (tested
    against it), but skips the unquoting of the many fields that need none: parse_qsl's
    general machinery was the largest single cost of a relay login.
    """
    if not query:
        return {}
    if query.count("&") >= MAX_PARAMS:
        raise BadRequest("bad_query", "The query string is malformed or has too many parameters.")
    out: dict[str, str] = {}
    for field in query.split("&"):
        if not field:
            continue
        key, _, value = field.partition("=")
        try:
            if "%" in key or "+" in key:
                key = unquote_field(key)
            if "%" in value or "+" in value:
                value = unquote_field(value)
        except UnicodeDecodeError:
            raise BadRequest("bad_query", "The query string is malformed or has too many parameters.") from None
        if key in out:
            raise BadRequest("duplicate_param", f"The parameter {key[:40]!r} appears more than once.")
        if len(value) > MAX_PARAM_LENGTH or len(key) > 128:
            raise BadRequest("oversized_param", f"The parameter {key[:40]!r} is too long.")
        out[key] = value
    return out


# "%xx" -> the ASCII character, for every spelling of xx unquote accepts (either case).
_ASCII_ESCAPES = {
    f"{a}{b}": chr(int(a + b, 16)) for a in "01234567" for b in "0123456789abcdefABCDEF"
}


def unquote_field(text: str) -> str:
    """urllib's unquote_plus(text, errors="strict"), with a fast path for the common case.

    A redirect target arrives as "https%3A%2F%2F...": every escape an ASCII character.
    Those are replaced straight from a table; anything else (an escape of a UTF-8 byte, a
    malformed escape) goes to urllib, which decodes or raises exactly as parse_qsl would.
    """
    text = text.replace("+", " ")
    head, *rest = text.split("%")
    out = [head]
    for part in rest:
        char = _ASCII_ESCAPES.get(part[:2])
        if char is None:
            return unquote(text, errors="strict")
        out.append(char)
        out.append(part[2:])
    return "".join(out)


def query_of(request: Request) -> str:
    """The raw query string (request.url would build and parse the whole URL first)."""
    return request.scope["query_string"].decode("latin-1")


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _append_query(url: str, params: dict[str, str]) -> str:
    base, _, fragment = url.partition("#")
    sep = "&" if "?" in base else "?"
    return base + sep + encode_query(params) + (f"#{fragment}" if fragment else "")


class Broker:
    """Everything a request handler needs, built once at start-up."""

    def __init__(
        self,
        settings: BrokerSettings,
        allowlist: AllowlistSource,
        provider: Provider,
        *,
        clock: Clock = system_clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.allowlist = allowlist
        self.provider = provider
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.serializers = make_serializers(settings.secret_keys, clock)
        self.guard = ReplayGuard(clock)
        self.policy = Policy.build(
            settings.allowed_email_domains, settings.allowed_groups, settings.github_orgs, settings.github_teams
        )
        self.sessions = SessionCodec(
            self.serializers,
            self.guard,
            session_ttl=settings.session_ttl,
            ticket_ttl=settings.ticket_ttl,
            cookie_domain=settings.cookie_domain,
            relevant_groups=self.policy.groups,
        )
        self.extra_ports = frozenset(settings.allowed_ports)
        self.public_host = settings.public_host
        self.broker_cookies = CookieNames.for_scheme(settings.secure_cookies, bool(settings.cookie_domain))
        # Label lookups cost more than the increments on the hot path: bind them once.
        self._auth_result = {
            r: self.metrics.auth_checks.labels(r) for r in ("ok", "unauthenticated", "forbidden", "host_not_live")
        }
        self._started = {m: self.metrics.logins_started.labels(m) for m in ("gate", "relay")}
        parent = bool(settings.cookie_domain)
        self._cookie_names = {s: CookieNames.for_scheme(s, parent) for s in (True, False)}
        template = set_cookie_header(
            self.broker_cookies.bind, "", max_age=settings.state_ttl + 60, secure=settings.secure_cookies
        )
        name_eq, _, attributes = template.partition(b";")
        self._bind_cookie_template = (name_eq, b";" + attributes)
        self._gate_url = ("", "")  # (authorization endpoint, its URL with gate mode's fixed parameters)

    # --- policy helpers ---------------------------------------------------
    def check(self, target: str | None, origin: Any = None) -> Verdict:
        return check_redirect(
            target or "",
            self.allowlist,
            allow_http=self.settings.allow_http,
            extra_ports=self.extra_ports,
            origin=origin,
        )

    def cookie_names(self, scheme: str) -> CookieNames:
        return self._cookie_names[scheme == "https"]

    def refuse(self, endpoint: str, err: BrokerError) -> Response:
        self.metrics.refused.labels(endpoint, err.reason).inc()
        log.warning("refused", extra={"endpoint": endpoint, "reason": err.reason, "status": err.status, **err.context})
        return page(err.status, err.title, err.message, err.reason)

    def preview_request(self, request: Request) -> PreviewRequest | None:
        """The preview host a direct request arrived on, or None on the broker's own host."""
        headers = pick_headers(request.scope["headers"], DIRECT_HEADERS)
        raw = headers.get("x-forwarded-host") or headers.get("host") or ""
        if raw.partition(":")[0] == self.public_host:
            return None  # the common case, decided without parsing
        try:
            req = from_direct(headers, request.url.scheme, request.url.path, request.url.query)
        except BrokerError:
            return None
        return None if req.host == self.public_host else req

    # --- relay mode ---------------------------------------------------------
    async def relay(self, request: Request) -> Response:
        q = parse_params(query_of(request))
        target = self.check(q.pop("return_to", None))
        if not target:
            raise BadRequest(f"redirect_{target.reason}", "return_to is not an address of a live preview environment.")
        client_id = q.get("client_id", "")
        if client_id not in self.settings.relay_clients:
            raise BadRequest("relay_unknown_client", "client_id is not a client this broker relays for.")
        if q.get("response_type") != "code":
            raise BadRequest("relay_response_type", "Only the authorization-code flow (response_type=code) is relayed.")
        redirect_uri = q.pop("redirect_uri", None)
        if redirect_uri is not None and redirect_uri != self.settings.callback_url:
            raise BadRequest(
                "relay_redirect_uri",
                f"redirect_uri must be the broker's callback {self.settings.callback_url} (or left out).",
            )
        app_state = q.pop("state", "")
        if len(app_state) > MAX_APP_STATE:
            raise BadRequest("oversized_param", "state is too long.")
        bind = self._bind_value(request)
        jti = secrets.token_urlsafe(16)
        envelope = {"m": "r", "t": target.url, "s": app_state, "j": jti, "b": bind_hash(bind)}
        state = dump(self.serializers.state, envelope)
        authz = await self.provider.authorization_endpoint()
        url = _append_query(authz, {**q, "redirect_uri": self.settings.callback_url, "state": state})
        self._started["relay"].inc()
        log.info("login_started", extra={"mode": "relay", "host": target.host})
        return redirect(url, [self._bind_cookie(bind)])

    # --- gate mode ------------------------------------------------------------
    async def start(self, request: Request) -> Response:
        q = parse_params(query_of(request))
        preview = self.preview_request(request)
        if preview is not None:
            return self._start_from_preview(preview, q)
        target = self.check(q.get("rd"))
        if not target:
            raise BadRequest(f"redirect_{target.reason}", "rd is not an address of a live preview environment.")
        bind = self._bind_value(request)
        jti = secrets.token_urlsafe(16)
        state = dump(self.serializers.state, {"m": "g", "t": target.url, "j": jti, "b": bind_hash(bind)})
        # state, the challenge and the nonce are base64url and '.': nothing in them needs quoting.
        url = f"{await self._gate_authorize_url()}&state={state}&code_challenge={s256(derive('pkce', bind, jti))}"
        if self.provider.uses_nonce:
            url += "&nonce=" + derive("nonce", bind, jti)
        self._started["gate"].inc()
        log.info("login_started", extra={"mode": "gate", "host": target.host})
        return redirect(url, [self._bind_cookie(bind)])

    async def _gate_authorize_url(self) -> str:
        """The authorization URL with gate mode's fixed parameters, encoded once per endpoint."""
        endpoint = await self.provider.authorization_endpoint()
        if self._gate_url[0] != endpoint:
            fixed = {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": self.settings.callback_url,
                **self.provider.gate_params(),
            }
            self._gate_url = (endpoint, _append_query(endpoint, fixed))
        return self._gate_url[1]

    def _start_from_preview(self, preview: PreviewRequest, q: dict[str, str]) -> Response:
        """A start on the preview host: resolve a relative rd there, continue on the broker host."""
        target = self.check(q.get("rd") or "/", preview.origin)
        if not target or target.host != preview.host:
            reason = target.reason if not target else "other_host"
            raise BadRequest(f"redirect_{reason}", "rd is not an address on this preview environment.")
        return self._login_from(target.url)

    def _login_from(self, url: str) -> Response:
        """Send the browser to the broker's own /oauth2/start, to come back to `url` after login."""
        return redirect(self.settings.public_url + "/oauth2/start?" + urlencode({"rd": url}))

    # --- the master callback ----------------------------------------------------
    async def callback(self, request: Request) -> Response:
        q = parse_params(query_of(request))
        try:
            env = load(self.serializers.state, q.get("state"), self.settings.state_ttl)
        except TokenError as exc:
            raise BadRequest(
                f"state_{exc.reason}",
                "This login link is invalid or has expired. Go back to the preview and sign in again.",
            ) from None
        bind = request_cookie(request, self.broker_cookies.bind) or ""
        if not _BIND_VALUE.match(bind) or not secrets.compare_digest(bind_hash(bind), str(env.get("b"))):
            raise BadRequest(
                "state_browser_mismatch",
                "This login was started in another browser, or cookies are blocked. Start again from the preview.",
            )
        jti = str(env.get("j", ""))
        if not jti or not self.guard.first_use("s:" + jti, self.clock() + self.settings.state_ttl + 1):
            raise BadRequest("state_replayed", "This login link was already used. Start again from the preview.")
        target = self._recheck(str(env.get("t", "")))
        if env.get("m") == "r":
            return self._relay_return(target, env, q)
        return await self._gate_return(target, bind, jti, q)

    def _recheck(self, url: str) -> Verdict:
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

    def _relay_return(self, target: Verdict, env: dict[str, Any], q: dict[str, str]) -> Response:
        back = {k: q[k] for k in RELAY_RETURNED if k in q}
        if env.get("s"):
            back["state"] = str(env["s"])
        if "code" not in back and "error" not in back:
            raise BadRequest("callback_without_code", "The identity provider sent neither a code nor an error.")
        self.metrics.logins_completed.labels("relay").inc()
        log.info("login_returned", extra={"mode": "relay", "host": target.host, "error": q.get("error", "")})
        return redirect(_append_query(target.url, back))

    async def _gate_return(self, target: Verdict, bind: str, jti: str, q: dict[str, str]) -> Response:
        if "error" in q:
            raise Forbidden(
                "idp_denied",
                f"The identity provider did not complete the login ({q['error'][:64]}).",
            )
        code = q.get("code")
        if not code:
            raise BadRequest("callback_without_code", "The identity provider sent no authorization code.")
        identity = await self.provider.identity_from_code(
            code, code_verifier=derive("pkce", bind, jti), nonce=derive("nonce", bind, jti)
        )
        decision = authorize(identity, self.policy)
        if not decision.allowed:
            raise Forbidden(
                f"not_authorized_{decision.reason}",
                f"You are signed in as {identity.user}, but this account is not allowed into preview environments. "
                "Ask an administrator to add you, or sign in with another account.",
                user=identity.user,
            )
        target = self._recheck(target.url)  # the code exchange took time: check once more
        ticket = self.sessions.mint_ticket(target.host, target.url, identity)
        url = _origin_of(target.url) + TICKET_PATH + "?" + urlencode({"ticket": ticket})
        log.info("login_authorized", extra={"mode": "gate", "host": target.host, "user": identity.user})
        return redirect(url)

    # --- on the preview host: ticket, sign-out, userinfo ---------------------------
    def redeem(self, preview: PreviewRequest, q: dict[str, str]) -> Response:
        try:
            ticket = self.sessions.redeem_ticket(q.get("ticket"), preview.host, self.clock())
        except TokenError as exc:
            raise BadRequest(
                exc.reason if exc.reason.startswith("ticket") else f"ticket_{exc.reason}",
                "This sign-in link is invalid, expired or already used. Open the preview again to sign in.",
            ) from None
        target = self._recheck(ticket.target)
        if target.host != preview.host:
            raise BadRequest("ticket_wrong_host", "This sign-in link belongs to another preview.")
        session = set_cookie_header(
            self.cookie_names(preview.scheme).session,
            self.sessions.issue(preview.host, ticket.identity),
            max_age=self.settings.session_ttl,
            secure=preview.scheme == "https",
            domain=self.settings.cookie_domain or None,
        )
        resp = redirect(target.url, [session])
        self.metrics.logins_completed.labels("gate").inc()
        log.info("session_issued", extra={"host": preview.host, "user": ticket.identity.user})
        return resp

    def sign_out_preview(self, preview: PreviewRequest, q: dict[str, str]) -> Response:
        target = self.check(q.get("rd") or "/", preview.origin)
        if not target or target.host != preview.host:
            reason = target.reason if not target else "other_host"
            raise BadRequest(f"redirect_{reason}", "rd is not an address on this preview.")
        cleared = clear_cookie_header(
            self.cookie_names(preview.scheme).session,
            secure=preview.scheme == "https",
            domain=self.settings.cookie_domain or None,
        )
        log.info("signed_out", extra={"host": preview.host})
        return redirect(target.url, [cleared])

    async def sign_out(self, request: Request) -> Response:
        q = parse_params(query_of(request))
        preview = self.preview_request(request)
        if preview is not None:
            return self.sign_out_preview(preview, q)
        secure = self.settings.secure_cookies
        cleared = [clear_cookie_header(self.broker_cookies.bind, secure=secure)]
        if self.settings.cookie_domain:
            # One session covers every preview (and reaches this host too): signing out here ends it.
            cleared.append(clear_cookie_header(self.broker_cookies.session, secure=secure,
                                               domain=self.settings.cookie_domain))
        if q.get("rd"):
            target = self.check(q["rd"])
            if not target:
                raise BadRequest(f"redirect_{target.reason}", "rd is not an address of a live preview environment.")
            return redirect(target.url, cleared)
        resp = page(200, "Signed out", "You are signed out of the login broker.")
        resp.raw_headers += [(b"set-cookie", c) for c in cleared]
        return resp

    async def ticket(self, request: Request) -> Response:
        preview = self.preview_request(request)
        if preview is None:
            raise BadRequest("ticket_on_broker_host", "Sign-in links are redeemed on the preview host, not here.")
        return self.redeem(preview, parse_params(query_of(request)))

    async def userinfo(self, request: Request) -> Response:
        preview = self.preview_request(request)
        identity = None
        if preview is not None and preview.host in self.allowlist:
            identity = self.sessions.verify(request_cookie(request, self.cookie_names(preview.scheme).session),
                                            preview.host)
        if identity is None:
            return JSONResponse({"error": "not signed in"}, 401, headers=NO_STORE)
        return JSONResponse(
            {"user": identity.user, "email": identity.email, "groups": list(identity.groups), "host": preview.host},  # type: ignore[union-attr]
            headers=NO_STORE,
        )

    # --- forward auth: the hot path ------------------------------------------------
    async def auth(self, request: Request) -> Response:
        return self.forward_auth(pick_headers(request.scope["headers"], FORWARD_AUTH_HEADERS), query_of(request))

    def forward_auth(self, headers: Mapping[str, str], query: str) -> Response:
        """Decide one forward-auth request from its headers alone (no I/O, nothing awaited)."""
        preview = from_forward_auth(headers)
        if preview.path.startswith("/oauth2/"):
            special = self._auth_special(preview)
            if special is not None:
                return special
        if preview.host not in self.allowlist:
            self._auth_result["host_not_live"].inc()
            raise Forbidden("host_not_live", "This preview environment is not live.", host=preview.host)
        token = cookie_value(headers.get("cookie", ""), self.cookie_names(preview.scheme).session)
        identity = self.sessions.verify(token, preview.host) if token else None
        if identity is None:
            self._auth_result["unauthenticated"].inc()
            if token:
                log.info("refused", extra={"endpoint": "auth", "reason": "session_invalid", "host": preview.host})
            if "redirect=true" in query.split("&") and _wants_html(headers):
                return self._login_from(preview.url)
            return PlainTextResponse("sign in required", 401, headers=NO_STORE)
        decision = authorize(identity, self.policy)
        if not decision.allowed:
            self._auth_result["forbidden"].inc()
            raise Forbidden(f"not_authorized_{decision.reason}", "This account is not allowed into previews.")
        self._auth_result["ok"].inc()
        return RawResponse(202, _identity_raw_headers(identity))

    def _auth_special(self, preview: PreviewRequest) -> Response | None:
        """Broker paths on the preview host, reached through forward auth (Traefik)."""
        if preview.path == TICKET_PATH:
            return self.redeem(preview, parse_params(preview.query))
        if preview.path == "/oauth2/sign_out":
            return self.sign_out_preview(preview, parse_params(preview.query))
        if preview.path == "/oauth2/start":
            return self._start_from_preview(preview, parse_params(preview.query))
        return None

    # --- operations -----------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(self, request: Request) -> Response:
        if self.allowlist.ready:
            return PlainTextResponse("ready")
        return PlainTextResponse("allowlist not synced yet", 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # --- cookies ----------------------------------------------------------------------
    def _bind_value(self, request: Request) -> str:
        current = request_cookie(request, self.broker_cookies.bind) or ""
        return current if _BIND_VALUE.match(current) else secrets.token_urlsafe(32)

    def _bind_cookie(self, bind: str) -> bytes:
        # Refreshed on every start so a login begun now can finish within state_ttl.  The value
        # is a 43-character base64url token (made here or checked by _BIND_VALUE), so only the
        # value changes between two of these headers: the rest is built once.
        name_eq, attributes = self._bind_cookie_template
        return name_eq + bind.encode("ascii") + attributes


def _wants_html(headers: Mapping[str, str]) -> bool:
    method = headers.get("x-forwarded-method", "GET").upper()
    return method in ("GET", "HEAD") and "text/html" in headers.get("accept", "")


def request_cookie(request: Request, name: str) -> str | None:
    """One cookie of a request (all its Cookie headers: HTTP/2 may split them), without
    parsing the others as request.cookies would."""
    header = "; ".join(v.decode("latin-1") for k, v in request.scope["headers"] if k == b"cookie")
    return cookie_value(header, name) if header else None


def cookie_value(header: str, name: str) -> str | None:
    """One cookie's value from a Cookie header, without parsing the others (hot path)."""
    if name not in header:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip('"')
    return None


@lru_cache(maxsize=65536)
def _identity_raw_headers(identity: Identity) -> list[tuple[bytes, bytes]]:
    """The 202's headers, computed once per identity (they are the same on every request)."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in _identity_headers(identity).items()]


def _identity_headers(identity: Identity) -> dict[str, str]:
    headers = {"X-Auth-Request-User": _header_safe(identity.user)}
    if identity.email:
        headers["X-Auth-Request-Email"] = _header_safe(identity.email)
    if identity.groups:
        headers["X-Auth-Request-Groups"] = _header_safe(",".join(identity.groups))
    return headers


def _header_safe(value: str) -> str:
    # Identity comes from the IdP; never let it smuggle a header line.
    return "".join(ch for ch in value if 0x20 <= ord(ch) < 0x7F)


def _failure(broker: Broker, name: str, exc: Exception) -> Response:
    if isinstance(exc, BrokerError):
        return broker.refuse(name, exc)
    log.exception("internal_error", extra={"endpoint": name})
    return page(500, "Internal error", "The broker failed unexpectedly; the error was logged.", "internal")


def _endpoint(broker: Broker, name: str, handler: Handler) -> Handler:
    latency = broker.metrics.latency.labels(name)

    async def wrapped(request: Request) -> Response:
        started = time.perf_counter()
        try:
            return await handler(request)
        except Exception as exc:
            return _failure(broker, name, exc)
        finally:
            latency.observe(time.perf_counter() - started)

    return wrapped


class BrokerApp:
    """The ASGI entry point: /oauth2/auth on a lean path, everything else through Starlette.

    Forward auth runs on every request of every preview app, so it skips the
    router, the Request object and header re-parsing; it calls the very same
    Broker.forward_auth as the routed endpoint does, so the rules are identical.
    """

    def __init__(self, broker: Broker, app: Starlette, lean: dict[str, Handler]) -> None:
        self.broker = broker
        self.app = app
        self.state = app.state
        self._latency = broker.metrics.latency.labels("auth")
        # GET endpoints that need no routing features: called directly with a Request.
        self._lean = lean

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/oauth2/auth":
                started = time.perf_counter()
                try:
                    query = scope["query_string"].decode("latin-1")
                    response = self.broker.forward_auth(pick_headers(scope["headers"], FORWARD_AUTH_HEADERS), query)
                except Exception as exc:
                    response = _failure(self.broker, "auth", exc)
                self._latency.observe(time.perf_counter() - started)
                await response(scope, receive, send)
                return
            if scope["method"] == "GET" and path in self._lean:
                response = await self._lean[path](Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_allowlist(settings: BrokerSettings) -> AllowlistSource:
    if settings.allowlist_source == "kubernetes":
        from broker.kube_allowlist import KubernetesAllowlist

        return KubernetesAllowlist()
    return StaticAllowlist(settings.allowed_hosts)


def create_app(
    settings: BrokerSettings,
    *,
    allowlist: AllowlistSource | None = None,
    clock: Clock = system_clock,
    http: httpx.AsyncClient | None = None,
) -> BrokerApp:
    source = allowlist if allowlist is not None else build_allowlist(settings)
    client = http or httpx.AsyncClient(timeout=settings.idp_timeout, follow_redirects=False)
    broker = Broker(settings, source, make_provider(settings, client), clock=clock)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await source.start()
        log.info(
            "broker_started",
            extra={"public_url": settings.public_url, "callback": settings.callback_url, "provider": settings.provider},
        )
        try:
            yield
        finally:
            await source.stop()
            if http is None:
                await client.aclose()

    login = {
        "/oauth2/relay": _endpoint(broker, "relay", broker.relay),
        "/oauth2/start": _endpoint(broker, "start", broker.start),
        "/oauth2/callback": _endpoint(broker, "callback", broker.callback),
    }
    routes = [
        Route("/oauth2/auth", _endpoint(broker, "auth", broker.auth), methods=["GET", "HEAD", "POST"]),
        *(Route(path, handler) for path, handler in login.items()),
        Route(TICKET_PATH, _endpoint(broker, "ticket", broker.ticket)),
        Route("/oauth2/sign_out", _endpoint(broker, "sign_out", broker.sign_out), methods=["GET", "POST"]),
        Route("/oauth2/userinfo", _endpoint(broker, "userinfo", broker.userinfo)),
        Route("/healthz", broker.healthz),
        Route("/readyz", broker.readyz),
        Route("/metrics", broker.metrics_endpoint),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.broker = broker
    return BrokerApp(broker, app, login)

"""The broker's ASGI app: routes, the forward-auth fast lane, and the app factory.

Handlers live with their flow (login.py, preview.py, forward_auth.py, operations.py);
this module only wires them: every handler's BrokerError becomes a short page and a
counted, rate-limited log line; anything else is a logged 500 without a stack trace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.allowlist import AllowlistSource, StaticAllowlist
from broker.core import Broker
from broker.errors import BadRequest, BrokerError
from broker.forward_auth import ForwardAuth
from broker.forwarded import pick_headers
from broker.login import Login
from broker.metrics import Metrics
from broker.operations import Operations
from broker.preview import PreviewEndpoints
from broker.providers import make_provider
from broker.query import parse_params, query_of
from broker.responses import page
from broker.sessions import TICKET_PATH
from broker.settings import BrokerSettings
from broker.signout import SignOut
from foundation.clock import Clock, system_clock
from foundation.logs import bind_request

log = logging.getLogger("preview_broker.broker")

Handler = Callable[[Request], Awaitable[Response]]


def failure(broker: Broker, name: str, exc: Exception) -> Response:
    if isinstance(exc, BrokerError):
        return broker.refuse(name, exc)
    log.exception("internal_error", extra={"endpoint": name})
    return page(500, "Internal error", "The broker failed unexpectedly; the error was logged.", "internal")


def endpoint(broker: Broker, name: str, handler: Handler) -> Handler:
    latency = broker.metrics.latency.labels(name)
    codes = broker.metrics.status_counts(name)

    async def wrapped(request: Request) -> Response:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except Exception as exc:
            response = failure(broker, name, exc)
        finally:
            latency.observe(time.perf_counter() - started)
        codes[response.status_code].value += 1
        return response

    return wrapped


class Routes:
    """The handlers of requests routed straight to the broker, on its host or a preview host."""

    def __init__(self, broker: Broker) -> None:
        self.b = broker
        self.preview = PreviewEndpoints(broker)
        self.login = Login(broker)
        self.signout = SignOut(broker, self.preview)
        self.forward_auth = ForwardAuth(broker, self.preview, self.signout)
        self.operations = Operations(broker.allowlist, broker.metrics)

    async def start(self, request: Request) -> Response:
        return await self.login.start(request, self.preview.start)

    async def ticket(self, request: Request) -> Response:
        preview = self.b.preview_request(request)
        if preview is None:
            raise BadRequest("ticket_on_broker_host", "Sign-in links are redeemed on the preview host, not here.")
        login = self.b.cookie(request, self.b.cookie_names(preview.scheme).login)
        return self.preview.redeem(preview, parse_params(query_of(request.scope)), login)

    async def sign_out(self, request: Request) -> Response:
        q = parse_params(query_of(request.scope))
        origin, fetch_site = request.headers.get("origin"), request.headers.get("sec-fetch-site")
        preview = self.b.preview_request(request)
        if preview is not None:
            return self.signout.on_preview(preview, q, origin, fetch_site)
        if request.method == "POST":
            return self.signout.on_broker(origin, fetch_site)
        return self.signout.ask(q)

    async def userinfo(self, request: Request) -> Response:
        return self.preview.userinfo(self.b.preview_request(request), lambda name: self.b.cookie(request, name))

    async def auth(self, request: Request) -> Response:
        headers = pick_headers(request.scope["headers"], self.forward_auth.headers)
        return self.forward_auth.decide(headers, query_of(request.scope))


class BrokerApp:
    """The ASGI entry point: /oauth2/auth on a lean path, everything else through Starlette.

    Forward auth runs on every request of every preview app, so it skips the router, the
    Request object and header re-parsing; it calls the very same ForwardAuth.decide as the
    routed endpoint does, so the rules are identical.
    """

    def __init__(self, broker: Broker, routes: Routes, app: Starlette) -> None:
        self.broker = broker
        self.routes = routes
        self.app = app
        self.state = app.state
        self._decide = routes.forward_auth.decide
        self._headers = routes.forward_auth.headers
        self._decide_gateway = routes.forward_auth.decide_gateway
        self._gateway_headers = routes.forward_auth.gateway_headers
        self._prefix = broker.settings.ext_auth_prefix
        self._prefix_slash = self._prefix + "/"
        self._latency = broker.metrics.latency.labels("auth")
        self._gateway_latency = broker.metrics.latency.labels("ext_auth")
        self._codes = broker.metrics.status_counts("auth")
        self._gateway_codes = broker.metrics.status_counts("ext_auth")

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            bind_request(scope)  # log lines of this request carry its id (worked out only if one is logged)
            path = scope["path"]
            if path == "/oauth2/auth":
                await self._check(scope, "auth", self._auth, self._latency, self._codes)(scope, receive, send)
                return
            if path.startswith(self._prefix_slash) or path == self._prefix:
                check = self._check(scope, "ext_auth", self._ext_auth, self._gateway_latency, self._gateway_codes)
                await check(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _check(self, scope, name, decide, latency, codes) -> Response:  # type: ignore[no-untyped-def]
        """Decide, time and count one check; any failure is the endpoint's own error page. (Plain, not
        async: one coroutine fewer a request on the hottest path.)"""
        started = time.perf_counter()
        try:
            response = decide(scope)
        except Exception as exc:
            response = failure(self.broker, name, exc)
        latency.observe(time.perf_counter() - started)
        codes[response.status_code].value += 1
        return response

    def _auth(self, scope) -> Response:  # type: ignore[no-untyped-def]
        return self._decide(pick_headers(scope["headers"], self._headers), scope["query_string"].decode("latin-1"))

    def _ext_auth(self, scope) -> Response:  # type: ignore[no-untyped-def]
        # The original path exactly as the gateway sent it (scope["path"] is percent-decoded).
        raw = scope.get("raw_path")
        original = raw.decode("latin-1") if raw else scope["path"]
        return self._decide_gateway(pick_headers(scope["headers"], self._gateway_headers),
                                    original[len(self._prefix):], scope["query_string"].decode("latin-1"),
                                    scope["method"])

    def metrics_app(self) -> Starlette:
        return self.routes.operations.metrics_app()


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
) -> BrokerApp:
    source = allowlist if allowlist is not None else build_allowlist(settings)
    metrics = Metrics()
    provider = make_provider(settings, lambda inner: metrics.upstream.transport("idp", inner))
    broker = Broker(settings, source, provider, clock=clock, metrics=metrics)
    routes = Routes(broker)

    async def flush_bounded_log() -> None:
        while True:  # the summaries of log windows that ended (see boundedlog.py)
            await asyncio.sleep(10)
            broker.bounded_log.flush()

    @asynccontextmanager
    async def lifespan(app: Starlette):
        await source.start()
        flusher = asyncio.create_task(flush_bounded_log())
        log.info(
            "broker_started",
            extra={"public_url": settings.public_url, "callback": settings.callback_url, "provider": settings.provider,
                   "forward_auth_proxy": settings.forward_auth_proxy},
        )
        try:
            yield
        finally:
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
            broker.bounded_log.flush(float("inf"))
            await source.stop()
            await provider.aclose()

    def ep(name: str, handler: Handler) -> Handler:
        return endpoint(broker, name, handler)

    ops = routes.operations
    app = Starlette(routes=[
        Route("/oauth2/auth", ep("auth", routes.auth), methods=["GET", "HEAD", "POST"]),
        Route("/oauth2/relay", ep("relay", routes.login.relay), methods=["GET", "POST"]),
        Route("/oauth2/start", ep("start", routes.start)),
        Route("/oauth2/callback", ep("callback", routes.login.callback)),
        Route(TICKET_PATH, ep("ticket", routes.ticket)),
        Route("/oauth2/sign_out", ep("sign_out", routes.sign_out), methods=["GET", "POST"]),
        Route("/oauth2/userinfo", ep("userinfo", routes.userinfo)),
        Route("/healthz", ops.healthz),
        Route("/readyz", ops.readyz),
    ], lifespan=lifespan)
    app.state.broker = broker
    return BrokerApp(broker, routes, app)

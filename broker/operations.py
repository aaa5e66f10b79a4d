"""Operations: health and readiness on the public port, Prometheus metrics on a port of their own.

/metrics is not on the public port: the ingress routes the broker's public host to it, and
its counters (refusal reasons, hosts in use) are for the operator, not the internet.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from broker.allowlist import AllowlistSource
from broker.metrics import Metrics


class Operations:
    def __init__(self, allowlist: AllowlistSource, metrics: Metrics) -> None:
        self.allowlist = allowlist
        self.metrics = metrics

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(self, request: Request) -> Response:
        if self.allowlist.ready:
            return PlainTextResponse("ready")
        return PlainTextResponse("allowlist not synced yet", 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def metrics_app(self) -> Starlette:
        """The app of the metrics port: /metrics, and the probes for convenience."""
        return Starlette(routes=[
            Route("/metrics", self.metrics_endpoint),
            Route("/healthz", self.healthz),
            Route("/readyz", self.readyz),
        ])

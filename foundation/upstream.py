"""Duration and errors of the calls the components make to others: the identity provider
(broker), GitHub and S3 (controller).

One histogram and one error counter per registry, labelled by upstream.  httpx clients get
an instrumented transport; the S3 client (botocore) is instrumented through its events.
Every series a component can produce exists from the start at zero, so `rate()` and the
alerts see a flat line rather than no data before the first failure.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram

BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# timeout: no answer in time; network: refused, reset, DNS; 5xx: the upstream failed;
# rate_limited: 429 (GitHub's secondary limits answer 403 and are counted as retries, not here).
REASONS = ("timeout", "network", "5xx", "rate_limited")


class UpstreamMetrics:
    def __init__(self, registry: CollectorRegistry, upstreams: tuple[str, ...]) -> None:
        self.seconds = Histogram(
            "preview_broker_upstream_request_duration_seconds",
            "Calls to the identity provider, GitHub or S3: time to the answer's headers, failures included",
            ["upstream"], registry=registry, buckets=BUCKETS,
        )
        self.errors = Counter(
            "preview_broker_upstream_errors", "Failed calls to the identity provider, GitHub or S3, by reason",
            ["upstream", "reason"], registry=registry,
        )
        for upstream in upstreams:
            self.seconds.labels(upstream)
            for reason in REASONS:
                self.errors.labels(upstream, reason)

    def transport(self, upstream: str, inner: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncBaseTransport:
        """An httpx transport that times and counts every request of a client (retries each count)."""
        return _Instrumented(inner or httpx.AsyncHTTPTransport(), self, upstream)

    def observe(self, upstream: str, seconds: float, status: int | None = None, error: str | None = None) -> None:
        self.seconds.labels(upstream).observe(seconds)
        if error is None and status is not None:
            error = "5xx" if status >= 500 else "rate_limited" if status == 429 else None
        if error is not None:
            self.errors.labels(upstream, error).inc()

    def instrument_botocore(self, client: Any, upstream: str = "s3") -> None:
        """Time every API call of an aiobotocore client (retries included) through its events."""
        events = client.meta.events

        def before(context: dict[str, Any], **_: Any) -> None:
            context["preview_broker_started"] = time.perf_counter()

        def after(context: dict[str, Any], http_response: Any = None, **_: Any) -> None:
            started = context.pop("preview_broker_started", None)
            if started is not None:
                self.observe(upstream, time.perf_counter() - started, getattr(http_response, "status_code", None))

        def failed(context: dict[str, Any], exception: BaseException | None = None, **_: Any) -> None:
            started = context.pop("preview_broker_started", None)
            if started is not None:
                timeout = "timeout" in type(exception).__name__.lower()
                self.observe(upstream, time.perf_counter() - started, error="timeout" if timeout else "network")

        events.register("before-call", before)
        events.register("after-call", after)
        events.register("after-call-error", failed)


class _Instrumented(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, metrics: UpstreamMetrics, upstream: str) -> None:
        self._inner = inner
        self._metrics = metrics
        self._upstream = upstream

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TimeoutException:
            self._metrics.observe(self._upstream, time.perf_counter() - started, error="timeout")
            raise
        except httpx.TransportError:
            self._metrics.observe(self._upstream, time.perf_counter() - started, error="network")
            raise
        self._metrics.observe(self._upstream, time.perf_counter() - started, response.status_code)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()

"""Prometheus metrics; one registry per app so several apps can live in one process (tests).

The metrics updated on every request (auth checks, requests by status code, request
durations, logins started) are kept in plain numbers and exposed through a custom collector.  prometheus_client's own
metric objects take a lock and go through several calls per update: about 2 µs of a
forward-auth check that otherwise costs 15.  The broker updates them only from its
event-loop thread, the one that also serves /metrics, so plain updates are safe.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from foundation.build import register_process_metrics
from foundation.upstream import UpstreamMetrics

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1


class Durations:
    """One histogram series: counts per bucket (v <= bound, as Prometheus defines it) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.sum += seconds


class StatusCounts(dict[int, Count]):
    """One endpoint's answers by status code: `counts[status].value += 1` is one dict lookup
    (the first answer with a new code adds its Count)."""

    def __missing__(self, status: int) -> Count:
        count = self[status] = Count()
        return count


class _Labelled:
    def __init__(self, factory: type) -> None:
        self._factory = factory
        self.children: dict[str, Count | Durations] = {}

    def labels(self, value: str):  # type: ignore[no-untyped-def]
        child = self.children.get(value)
        if child is None:
            child = self.children[value] = self._factory()
        return child


class _HotCollector:
    def __init__(self, counters: list[tuple[str, str, str, _Labelled]], latency: _Labelled,
                 requests: dict[str, StatusCounts]) -> None:
        self._counters = counters  # (name, help, label name, series by label value)
        self._latency = latency
        self._requests = requests

    def collect(self) -> Iterator[Metric]:
        for name, documentation, label, labelled in self._counters:
            family = CounterMetricFamily(name, documentation, labels=[label])
            for value, count in sorted(labelled.children.items()):
                family.add_metric([value], count.value)  # type: ignore[union-attr]
            yield family
        requests = CounterMetricFamily("preview_broker_requests", "Answers by endpoint and status code",
                                       labels=["endpoint", "code"])
        for endpoint, codes in sorted(self._requests.items()):
            for code, count in sorted(codes.copy().items()):  # copy: a new code may arrive meanwhile
                requests.add_metric([endpoint, str(code)], count.value)
        yield requests
        latency = HistogramMetricFamily(
            "preview_broker_request_duration_seconds", "Handling time by endpoint", labels=["endpoint"]
        )
        for endpoint, series in sorted(self._latency.children.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*DURATION_BUCKETS, float("inf")), series.counts):  # type: ignore[union-attr]
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
            latency.add_metric([endpoint], buckets, series.sum)  # type: ignore[union-attr]
        yield latency


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        register_process_metrics(r, "broker")
        self.upstream = UpstreamMetrics(r, ("idp",))
        self.logins_completed = Counter(
            "preview_broker_logins_completed", "Logins returned to a preview host", ["mode"], registry=r
        )
        for mode in ("gate", "relay"):  # from the start at zero: rate() and alerts see a line, not no data
            self.logins_completed.labels(mode)
        self.refused = Counter(
            "preview_broker_refused", "Requests refused, by endpoint and reason", ["endpoint", "reason"], registry=r
        )
        self.connections_closed = Counter(
            "preview_broker_connections_closed",
            "Connections the broker closed itself: slow_headers (not sent within HEADER_TIMEOUT) or "
            "over_capacity (refused with 503 past MAX_CONNECTIONS)", ["reason"], registry=r)
        for reason in ("slow_headers", "over_capacity"):
            self.connections_closed.labels(reason)
        self.auth_checks = _Labelled(Count)
        self.logins_started = _Labelled(Count)
        self.latency = _Labelled(Durations)
        self.requests: dict[str, StatusCounts] = {}
        counters = [
            ("preview_broker_auth_checks", "Forward-auth decisions by result", "result", self.auth_checks),
            ("preview_broker_logins_started", "Logins sent to the identity provider", "mode", self.logins_started),
        ]
        r.register(_HotCollector(counters, self.latency, self.requests))

    def status_counts(self, endpoint: str) -> StatusCounts:
        """The counts by status code of `endpoint`, to keep and update directly on its path."""
        return self.requests.setdefault(endpoint, StatusCounts())

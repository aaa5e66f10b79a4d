"""Prometheus metrics; one registry per app so several apps can live in one process (tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.logins_started = Counter(
            "preview_broker_logins_started", "Logins sent to the identity provider", ["mode"], registry=r
        )
        self.logins_completed = Counter(
            "preview_broker_logins_completed", "Logins returned to a preview host", ["mode"], registry=r
        )
        self.refused = Counter(
            "preview_broker_refused", "Requests refused, by endpoint and reason", ["endpoint", "reason"], registry=r
        )
        self.auth_checks = Counter(
            "preview_broker_auth_checks", "Forward-auth decisions by result", ["result"], registry=r
        )
        self.latency = Histogram(
            "preview_broker_request_duration_seconds",
            "Handling time by endpoint",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )

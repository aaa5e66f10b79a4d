"""Controller metrics (Prometheus)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.previews = Gauge("preview_broker_previews", "Preview environments by phase", ["phase"], registry=r)
        self.allowlist_size = Gauge("preview_broker_allowlist_hosts", "Hosts in the published allowlist", registry=r)
        self.reconcile_seconds = Histogram(
            "preview_broker_reconcile_duration_seconds", "Time per reconcile", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.reconcile_errors = Counter("preview_broker_reconcile_errors", "Failed reconciles", registry=r)
        self.watch_restarts = Counter(
            "preview_broker_watch_restarts", "Watch restarts by watch and reason", ["watch", "reason"], registry=r
        )
        self.leader = Gauge("preview_broker_leader", "1 while this replica holds the lease", registry=r)

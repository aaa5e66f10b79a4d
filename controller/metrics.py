"""Controller metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from foundation import contract
from foundation.build import register_process_metrics
from foundation.upstream import UpstreamMetrics

PHASES = (*contract.PHASES, "Unknown")


class _PreviewGauges:
    """Previews by phase and the allowlist size, counted when scraped.

    Counting walks every cached preview; done on a timer it held the event loop for
    tens of milliseconds every second at 10,000 previews, which showed in the allowlist
    propagation tail.  A scrape every 15-60 s costs the same walk, off the event loop
    (the metrics server has its own thread; list() copies the values atomically).
    """

    def __init__(self, previews: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self._previews = previews

    def collect(self) -> Iterator[Metric]:
        counts = dict.fromkeys(PHASES, 0)
        hosts = 0
        for pe in list(self._previews()):
            status = pe.get("status") or {}
            phase = status.get("phase") or "Unknown"
            counts[phase] = counts.get(phase, 0) + 1
            hosts += len(status.get("allowedHosts") or [])
        by_phase = GaugeMetricFamily("preview_broker_previews", "Preview environments by phase", labels=["phase"])
        for phase, count in counts.items():
            by_phase.add_metric([phase], count)
        yield by_phase
        yield GaugeMetricFamily("preview_broker_allowlist_hosts", "Hosts in the published allowlist", value=hosts)


class ControllerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        register_process_metrics(r, "controller")
        self.upstream = UpstreamMetrics(r, ("github", "s3"))
        self.reconcile_seconds = Histogram(
            "preview_broker_reconcile_duration_seconds", "Time per reconcile", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.reconcile_errors = Counter("preview_broker_reconcile_errors", "Failed reconciles", registry=r)
        self.watch_restarts = Counter(
            "preview_broker_watch_restarts", "Watch restarts by watch and reason", ["watch", "reason"], registry=r
        )
        self.leader = Gauge("preview_broker_leader", "1 while this replica holds the lease", registry=r)
        # Sampled from the event loop every second (O(1)), not at scrape: the queue is the loop's.
        self.queue_depth = Gauge("preview_broker_queue_depth", "Keys waiting for a reconcile worker", registry=r)
        self.queue_oldest = Gauge(
            "preview_broker_queue_oldest_seconds", "Seconds the longest-waiting key has waited for a worker",
            registry=r,
        )
        self.queue_delayed = Gauge(
            "preview_broker_queue_delayed", "Keys scheduled for later: requeues and retries after failures", registry=r
        )
        self.pull_request_checks = Counter(
            "preview_broker_pull_request_checks", "Pull-request lookups on GitHub by result", ["result"], registry=r
        )

    def count_previews(self, previews: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        """Export previews by phase and the allowlist size from `previews()` at every scrape."""
        self.registry.register(_PreviewGauges(previews))

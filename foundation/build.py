"""What this build is: the package version, for --version and the build-info series."""

from __future__ import annotations

import platform
from functools import cache
from importlib import metadata

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    gc_collector,
    platform_collector,
    process_collector,
)


@cache
def version() -> str:
    try:
        return metadata.version("preview-broker")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def register_process_metrics(registry: CollectorRegistry, component: str) -> None:
    """process_* (CPU, memory, open files), python_* (version, GC) and preview_broker_build_info,
    which dashboards join on to show the version each pod runs."""
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)
    info = Gauge("preview_broker_build_info", "Always 1: the version and Python this process runs",
                 ["version", "python_version", "component"], registry=registry)
    info.labels(version(), platform.python_version(), component).set(1)

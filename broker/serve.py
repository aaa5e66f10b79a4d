"""Run the broker under uvicorn (on uvloop and httptools, both dependencies): the public app, and
/metrics on a port of its own, in one event loop, both with bounded connections (connections.py)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterator

import uvicorn

from broker.app import create_app
from broker.connections import ConnectionGuard, check_descriptor_room, guarded_protocol
from broker.metrics import Metrics
from broker.settings import BrokerSettings
from foundation import logs

# Prometheus and kubelet probes are the metrics port's only clients.
METRICS_MAX_CONNECTIONS = 64


class _Sidecar(uvicorn.Server):
    """The metrics server: it leaves signals to the main server and stops with it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _guard(settings: BrokerSettings, metrics: Metrics, max_connections: int) -> ConnectionGuard:
    closed = metrics.connections_closed
    return ConnectionGuard(settings.header_timeout, max_connections,
                           on_slow=closed.labels("slow_headers").inc, on_refused=closed.labels("over_capacity").inc)


def _config(app, host: str, port: int, guard: ConnectionGuard) -> uvicorn.Config:  # type: ignore[no-untyped-def]
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(guard),
        # No WebSocket endpoint: never load a WebSocket library another package installed (an upgrade
        # would also leave the guard's count behind).
        ws="none",
        log_config=None,
        access_log=False,
        proxy_headers=False,  # the broker reads X-Forwarded-* itself, only where it means to
        server_header=False,
        date_header=False,  # one header less to format and validate on every forward-auth answer
        lifespan="on",
    )


async def _serve(main: uvicorn.Server, metrics: uvicorn.Server | None) -> None:
    if metrics is None:
        await main.serve()
        return
    sidecar = asyncio.create_task(metrics.serve())
    try:
        await main.serve()
    finally:
        metrics.should_exit = True
        await sidecar


def serve(settings: BrokerSettings, *, host: str, port: int, metrics_port: int = 0) -> int:
    logs.setup(settings.log_level, settings.log_format)
    check_descriptor_room(settings.max_connections, METRICS_MAX_CONNECTIONS if metrics_port else 0)
    app = create_app(settings)
    config = _config(app, host, port, _guard(settings, app.broker.metrics, settings.max_connections))
    config.load()
    main = uvicorn.Server(config)
    metrics = None
    if metrics_port:
        metrics_guard = _guard(settings, app.broker.metrics, METRICS_MAX_CONNECTIONS)
        metrics_config = _config(app.metrics_app(), host, metrics_port, metrics_guard)
        metrics_config.lifespan = "off"
        metrics_config.load()
        metrics = _Sidecar(metrics_config)
    # Everything imported so far (Starlette, pydantic, kubernetes-asyncio, ...) lives for the
    # whole process; freezing it keeps the garbage collector from rescanning it on every
    # collection, which otherwise showed up as latency spikes on the forward-auth path.
    gc.collect()
    gc.freeze()
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:  # uvloop when installed
        runner.run(_serve(main, metrics))
    return 0

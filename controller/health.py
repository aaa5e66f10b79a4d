"""Liveness as the event loop sees it, served with the metrics from a thread.

The probe server runs in its own thread (so a scrape that counts 10,000 previews
never holds the event loop), which is exactly why it cannot answer /healthz by
merely being up: a wedged event loop leaves that thread answering happily.  So
the loop proves it is alive: a heartbeat task stamps the time every second, and
/healthz fails when the stamp is older than `stall_after`.  It fails too when a
watch's loop has ended, or a watch has failed for `watch_dead_after` seconds
without a single success (the caches behind the allowlist are then stale, and a
restart with fresh connections is the cure).

A follower has no watches; its heartbeat alone keeps it live.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app


class WatchHealth(Protocol):
    name: str
    stopped: bool

    def failing_for(self, now: float | None = None) -> float: ...


class Health:
    def __init__(
        self,
        *,
        stall_after: float = 10.0,
        watch_dead_after: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_after = stall_after
        self.watch_dead_after = watch_dead_after
        self.clock = clock
        self.beat = clock()
        self.watches: Callable[[], Iterable[WatchHealth]] = lambda: ()

    async def heartbeat(self, interval: float = 1.0) -> None:
        while True:
            self.beat = self.clock()
            await asyncio.sleep(interval)

    def problems(self) -> list[str]:
        """Why the process is not healthy; empty when it is.  Safe to call from any thread."""
        now = self.clock()
        out = []
        stalled = now - self.beat
        if stalled > self.stall_after:
            out.append(f"event loop stalled for {stalled:.1f}s")
        for w in list(self.watches()):
            if w.stopped:
                out.append(f"watch {w.name} stopped")
            elif (failing := w.failing_for(now)) > self.watch_dead_after:
                out.append(f"watch {w.name} failing for {failing:.0f}s")
        return out


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every 10 s need no log line
        pass


def probe_app(registry: CollectorRegistry, health: Health) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            problems = health.problems()
            status = "503 Service Unavailable" if problems else "200 OK"
            body = ("\n".join(problems) if problems else "ok").encode() + b"\n"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")])
            return [body]
        return metrics(environ, start_response)

    return app


def serve_probes(port: int, registry: CollectorRegistry, health: Health, addr: str = "0.0.0.0") -> WSGIServer:
    """/metrics and /healthz on `port` from a daemon thread; returns the server (port 0: see server_port)."""
    server = make_server(addr, port, probe_app(registry, health), _Threading, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    return server

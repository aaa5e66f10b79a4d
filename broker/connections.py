"""Bounds on the connections uvicorn serves: request headers within HEADER_TIMEOUT, at most
MAX_CONNECTIONS open at once.

uvicorn waits for a request's headers as long as the client keeps sending: one header line every
few seconds holds a socket forever, and a few thousand such clients use up the pod's file
descriptors (then every accept fails, honest clients included). Here:

* **Slow headers.** A connection must complete its request headers within HEADER_TIMEOUT of
  being opened (first request) or of the request's first byte (later ones on a kept-alive
  connection); otherwise it is closed, as Go's `ReadHeaderTimeout` does. The idle gap between
  requests stays uvicorn's keep-alive timeout. One periodic sweep per server reads uvicorn's own
  per-connection state (a request whose scope has no "method" yet has not finished its headers),
  so nothing at all is added to the per-request path: no timer armed and cancelled, no bookkeeping.
  That state is HttpToolsProtocol's `scope` (a new dict in on_message_begin, "method" set in
  on_headers_complete); tests/broker/test_connections.py runs the real server, so a uvicorn
  release that changes it fails there rather than in production.
* **Too many connections.** Past MAX_CONNECTIONS, a new connection is answered at once with
  `503 Service Unavailable` and `Connection: close`, before anything is read from it. Start-up
  checks that RLIMIT_NOFILE leaves room for the cap (raising the soft limit when the hard limit
  allows), so the cap, not a failing accept(), is what a flood meets.

uvicorn's own `limit_concurrency` is not used: it answers 503 only once a request's headers are
parsed, so it never refuses the slow client that holds a socket without finishing its headers,
and it counts ASGI tasks as well as connections, so it cannot say how many sockets are open.
"""

from __future__ import annotations

import asyncio
import math
import resource
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from foundation.config import ConfigError, env_name

# What the process needs besides the served connections: the metrics port's connections, calls to
# the identity provider and the API server, log and library files.
RESERVED_FDS = 256
_BUSY = b"Too many connections; try again soon.\n"
SERVICE_UNAVAILABLE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
                       b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BUSY), _BUSY))


class ConnectionGuard:
    """One server's bounds: the cap on its connections, and the sweep that closes those that owe
    request headers for longer than the timeout.

    Time is counted in sweeps (`tick`) every `interval` seconds. A connection first seen owing
    headers at tick k started owing them after tick k - 1, so at tick k + limit it has owed them
    for at least the timeout: it is closed within the timeout plus one interval.
    """

    def __init__(self, header_timeout: float, max_connections: int, *,
                 on_slow: Callable[[], None] = lambda: None, on_refused: Callable[[], None] = lambda: None) -> None:
        self.max_connections = max_connections
        self.interval = min(0.5, header_timeout / 6)
        self.limit = math.ceil(header_timeout / self.interval - 1e-9)  # 3 / 0.5 is 6 sweeps, not 7
        self.tick = 0
        # connection -> (the request scope it owed headers for when first seen, that sweep's tick)
        self.owing: dict[Any, tuple[Any, int]] = {}
        self.on_slow = on_slow
        self.on_refused = on_refused
        self._connections: set[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, connections: set[Any], loop: asyncio.AbstractEventLoop) -> None:
        """Sweep `connections` (uvicorn's set of the server's open ones) from now on."""
        if self._timer is None:
            self._connections = connections
            self._timer = loop.call_later(self.interval, self._run, loop)

    def sweep(self, connections: set[Any]) -> list[Any]:
        """One sweep: note who owes headers since when, and return those owing them too long."""
        self.tick += 1
        owing, late = self.owing, []
        for conn in connections:
            scope = conn.scope  # None until the first byte; a new dict per request; "method" once headers are in
            if scope is not None and "method" in scope:
                owing.pop(conn, None)
                continue
            mark = owing.get(conn)
            if mark is None or (mark[0] is not None and mark[0] is not scope):
                owing[conn] = (scope, self.tick)  # a new request began since the last sweep
            elif self.tick - mark[1] >= self.limit:
                late.append(conn)
            elif mark[0] is None and scope is not None:
                owing[conn] = (scope, mark[1])  # a first request's headers are owed from the connection's start
        for conn in late:
            del owing[conn]
        if len(owing) > len(connections):  # forget the connections that closed meanwhile
            for conn in [c for c in owing if c not in connections]:
                del owing[conn]
        return late

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._connections is not None
        for conn in self.sweep(self._connections):
            self.on_slow()
            conn.transport.close()
        self._timer = loop.call_later(self.interval, self._run, loop)


def guarded_protocol(guard: ConnectionGuard) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol (the one `uvicorn[standard]` serves with) under `guard`: only
    opening a connection differs, every request is handled by uvicorn's code unchanged."""

    class Guarded(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            if len(self.connections) >= guard.max_connections:
                # Refused before uvicorn reads anything: no parser input, no task, not in its
                # connection set. Closing stops reading; the descriptor goes once the answer is out.
                guard.on_refused()
                self.transport = transport
                transport.write(SERVICE_UNAVAILABLE)
                transport.close()
                return
            guard.watch(self.connections, self.loop)
            super().connection_made(transport)

    return Guarded


def check_descriptor_room(max_connections: int, extra: int = 0) -> None:
    """Make sure RLIMIT_NOFILE lets the process hold `max_connections` (plus `extra`) sockets;
    raise the soft limit up to the hard one if needed, else stop start-up naming the setting."""
    need = max_connections + extra + RESERVED_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard == resource.RLIM_INFINITY or hard >= need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
        return
    raise ConfigError(env_name("max_connections"),
                      f"is {max_connections}, but the open-file limit (RLIMIT_NOFILE) is {hard}; the broker needs "
                      f"{need} (the cap plus {need - max_connections} for everything else): lower it or raise the limit")

"""An httpx transport that resolves every host name to 127.0.0.1 (a browser's host-resolver rules).

Tests address preview hosts by name (pr-1.preview.localhost) so Host headers,
cookies and redirects behave as in production, while every connection stays on
loopback.
"""

from __future__ import annotations

import ssl

import httpcore
import httpx


class _LoopbackBackend(httpcore.SyncBackend):
    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # type: ignore[override]
        return super().connect_tcp("127.0.0.1", port, timeout, local_address, socket_options)


def loopback_client(verify: ssl.SSLContext | bool = True, **kwargs) -> httpx.Client:
    """`verify`: e.g. a context trusting this run's test CA; the transport holds it."""
    transport = httpx.HTTPTransport(verify=verify)
    transport._pool._network_backend = _LoopbackBackend()  # httpcore's documented extension point
    return httpx.Client(transport=transport, **kwargs)

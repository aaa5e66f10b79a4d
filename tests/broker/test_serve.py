"""The broker's uvicorn server: uvloop and httptools (direct dependencies, loaded by uvicorn by name),
and no WebSocket protocol at all (the broker has no WebSocket endpoint; uvicorn[standard] is not installed)."""

from __future__ import annotations

import httptools
import uvloop
from starlette.applications import Starlette
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from broker import serve
from broker.connections import ConnectionGuard


def _loaded() -> object:
    config = serve._config(Starlette(), "127.0.0.1", 0, ConnectionGuard(5, 10))
    config.load()
    return config


def test_the_server_parses_http_with_httptools() -> None:
    config = _loaded()
    assert issubclass(config.http_protocol_class, HttpToolsProtocol)
    assert httptools.__version__


def test_the_server_runs_on_uvloop() -> None:
    loop = _loaded().get_loop_factory()()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_the_server_speaks_no_websocket_even_when_a_websocket_library_is_installed(monkeypatch) -> None:
    # What ws="auto" picks when websockets or wsproto is importable (a test tool may bring one).
    monkeypatch.setattr("uvicorn.protocols.websockets.auto.AutoWebSocketsProtocol", HttpToolsProtocol)
    assert _loaded().ws_protocol_class is None

"""A recording reverse proxy in front of the real kube-apiserver: an audit of one client's requests.

Give each controller replica its own proxy (and a kubeconfig pointing at it),
and the test knows exactly which replica sent which request, and when; a watch
streams through unchanged.  Plain HTTP on loopback towards the client, the
apiserver's TLS towards the apiserver.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

from tests.support.controlplane import ControlPlane

_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer"}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: str
    at: float  # time.monotonic() when it arrived


@dataclass
class ApiProxy:
    cp: ControlPlane
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    def writes(self, since: float = 0.0) -> list[Call]:
        return [c for c in self.calls if c.method not in ("GET", "HEAD") and c.at >= since]

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "admin", "user": {"token": self.cp.admin_token}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "admin"}}],
            "current-context": "proxy",
        }))
        return path

    async def start(self) -> ApiProxy:
        tls = ssl.create_default_context(cafile=str(self.cp.ca_file))
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls, limit=0), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self.calls.append(Call(request.method, request.path, request.query_string, time.monotonic()))
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        async with self._session.request(request.method, self.cp.api_url + request.path_qs, headers=headers,
                                         data=body or None) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in _HOP:
                    response.headers[k] = v
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)  # a watch: every event as it comes
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # either side went away
            return response

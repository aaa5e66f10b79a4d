"""A small fake kube-apiserver on loopback: a real HTTP server that keeps Leases and misbehaves on cue.

Leases behave like the real thing (create, get, update with resourceVersion
checks: a stale update is a 409).  `fail(method, *answers)` scripts the next
answers to that method on a Lease: an HTTP status (404, 409, 500, ...) as a
Kubernetes Status object, or "hang" (the request never gets an answer, as
with a stalled apiserver).  Every request is recorded, so a test can assert
exactly what a client sent, and when.  Anything that is not a Lease is
answered 200 {} (and recorded): the fence tests send writes there.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client as k8s

from kube.client import Kube

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


@dataclass
class Request:
    method: str
    path: str
    at: float  # time.monotonic()
    body: Any = None


@dataclass
class FakeApiserver:
    leases: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    missing_namespaces: set[str] = field(default_factory=set)
    _script: dict[str, deque[int | str]] = field(default_factory=dict)
    _rv: int = 100
    url: str = ""
    _runner: web.AppRunner | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    # --- the test's side ---------------------------------------------------------------------
    def fail(self, method: str, *answers: int | str) -> None:
        self._script.setdefault(method, deque()).extend(answers)

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.leases.get(f"{namespace}/{name}")

    def put_lease(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self._rv += 1
        self.leases[f"{namespace}/{name}"] = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(self._rv)}, "spec": spec}

    def writes(self, since: float = 0.0, *, leases: bool = True) -> list[Request]:
        return [r for r in self.requests if r.method != "GET" and r.at >= since
                and (leases or "/leases" not in r.path)]

    async def kube(self) -> Kube:
        return Kube(k8s.ApiClient(k8s.Configuration(host=self.url)))

    async def start(self) -> FakeApiserver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the server's side -------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append(Request(request.method, request.path, time.monotonic(), body))
        parts = request.path.strip("/").split("/")
        # /apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]
        if len(parts) < 6 or parts[:3] != ["apis", "coordination.k8s.io", "v1"] or parts[5] != "leases":
            return await self._anything_else(request)
        script = self._script.get(request.method)
        if script:
            answer = script.popleft()
            if answer == "hang":
                await self._closing.wait()  # no answer until the server stops
            return _status(int(answer), f"scripted {answer}")
        namespace = parts[4]
        if namespace in self.missing_namespaces:
            return _status(404, f'namespaces "{namespace}" not found')
        if request.method == "POST" and len(parts) == 6:
            name = body["metadata"]["name"]
            if f"{namespace}/{name}" in self.leases:
                return _status(409, f'leases.coordination.k8s.io "{name}" already exists', "AlreadyExists")
            self.put_lease(namespace, name, body["spec"])
            return web.json_response(self.leases[f"{namespace}/{name}"], status=201)
        if len(parts) != 7:
            return _status(405, "method not allowed")
        key = f"{namespace}/{parts[6]}"
        if request.method == "GET":
            if key not in self.leases:
                return _status(404, f'leases.coordination.k8s.io "{parts[6]}" not found', "NotFound")
            return web.json_response(self.leases[key])
        if request.method == "PUT":
            current = self.leases.get(key)
            if current is None:
                return _status(404, "not found", "NotFound")
            if (body.get("metadata") or {}).get("resourceVersion") != current["metadata"]["resourceVersion"]:
                return _status(409, "the object has been modified; please apply your changes to the latest version",
                               "Conflict")
            self.put_lease(namespace, parts[6], body["spec"])
            return web.json_response(self.leases[key])
        return _status(405, "method not allowed")


    async def _anything_else(self, request: web.Request) -> web.StreamResponse:
        """An empty, quiet cluster: discovery knows no optional APIs, lists are empty, watches say
        nothing until the server stops, writes succeed."""
        if request.method != "GET":
            return web.json_response({}, status=201)
        if request.query.get("watch") in ("1", "true"):
            stream = web.StreamResponse(headers={"Content-Type": "application/json"})
            await stream.prepare(request)
            await self._closing.wait()
            return stream
        return web.json_response({"kind": "List", "items": [], "resources": [], "metadata": {"resourceVersion": "1"}})


def _status(code: int, message: str, reason: str = "") -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
            "reason": reason or "InternalError", "code": code}
    return web.Response(status=code, text=json.dumps(body), content_type="application/json")

"""Two scrapes of each component's /metrics, some traffic apart: what the alert and dashboard tests
evaluate their queries on.

`in_process()` drives the broker app in-process (IdP mocked at HTTP level) and fills a controller
registry by hand; `processes(control_plane, tmp)` runs `preview-broker broker` and `preview-broker
controller` as processes against the real control plane, a preview namespace and a fake GitHub,
and scrapes their metrics ports as Prometheus would.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.support.flows import callback, forward_auth
from tests.support.procs import Proc, free_port, http_ok, wait_until

Scrapes = dict[str, tuple[str, str]]  # component -> (first, second)
PREVIEW_DOMAIN = "preview.test"


def _broker_traffic(client: httpx.Client, login) -> None:  # type: ignore[no-untyped-def]
    """Refusals, forward-auth checks and one whole gate login, as on an ordinary day."""
    client.get("/oauth2/start", params={"rd": "https://evil.example/"})
    client.get("/oauth2/callback", params={"code": "c", "state": "junk"})
    forward_auth(client, f"http://pr-1.{PREVIEW_DOMAIN}/", nginx=False)
    forward_auth(client, f"http://pr-1.{PREVIEW_DOMAIN}/", nginx=False, query="?redirect=true", accept="text/html")
    login()


def in_process() -> Scrapes:
    import respx
    from starlette.testclient import TestClient

    from broker.allowlist import MutableAllowlist
    from broker.app import create_app
    from controller.metrics import ControllerMetrics
    from tests.support.brokerunit import PR1, PR2, make_settings
    from tests.support.fakeidp import FakeIdP
    from tests.support.flows import gate_login

    with respx.mock(assert_all_called=False) as router:
        idp = FakeIdP(router).install()
        app = create_app(make_settings(preview_domains=[PREVIEW_DOMAIN, "preview.example.com"],
                                       allowed_hosts=[PR1, PR2, f"pr-1.{PREVIEW_DOMAIN}"], allow_http=True),
                         allowlist=MutableAllowlist({PR1, PR2, f"pr-1.{PREVIEW_DOMAIN}"}))
        with TestClient(app, base_url="https://auth.preview.example.com", follow_redirects=False) as client, \
                TestClient(app.metrics_app()) as metrics:
            _broker_traffic(client, lambda: forward_auth(client, gate_login(client, idp, f"https://{PR1}/")))
            first = metrics.get("/metrics").text
            time.sleep(0.05)
            _broker_traffic(client, lambda: forward_auth(client, gate_login(client, idp, f"https://{PR1}/")))
            second = metrics.get("/metrics").text

    from prometheus_client import generate_latest

    controller = ControllerMetrics()
    previews = [{"status": {"phase": "Ready", "allowedHosts": [f"pr-1.{PREVIEW_DOMAIN}"]}}]
    controller.count_previews(lambda: previews)
    controller.leader.set(1)

    def work() -> None:
        for seconds in (0.004, 0.02, 0.3):
            controller.reconcile_seconds.observe(seconds)
        controller.queue_depth.set(0)
        controller.queue_oldest.set(0)

    work()
    c1 = generate_latest(controller.registry).decode()
    work()
    return {"broker": (first, second), "controller": (c1, generate_latest(controller.registry).decode())}


class _FakeGitHub(http.server.BaseHTTPRequestHandler):
    """GitHub's OAuth token endpoint and the two API calls a login makes (GitHub Enterprise paths)."""

    def _json(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # http.server calls it by this name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self._json({"access_token": "gho_test", "token_type": "bearer", "scope": "read:user,user:email"})

    def do_GET(self) -> None:
        if self.path.startswith("/api/v3/user/emails"):
            self._json([{"email": "alice@example.com", "primary": True, "verified": True}])
        else:
            self._json({"login": "alice", "id": 1})

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def _fake_github() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeGitHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


class _Loopback(httpx.HTTPTransport):
    """Sends every request to 127.0.0.1 (the URL's host stays in the Host header): the broker's public
    name needs no resolver."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # A copy: the client files the answer's cookies under the original request's host.
        sent = httpx.Request(request.method, request.url.copy_with(host="127.0.0.1"), headers=request.headers,
                             stream=request.stream, extensions=request.extensions)
        return super().handle_request(sent)


def _github_login(client: httpx.Client) -> None:
    target = f"http://pr-1.{PREVIEW_DOMAIN}/"
    on_preview = forward_auth(client, f"{target}oauth2/start?" + urlencode({"rd": target}), nginx=False)
    assert on_preview.status_code == 302, on_preview.text
    started = client.get(on_preview.headers["location"])
    assert started.status_code == 302, started.text
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    done = callback(client, code="code-1", state=state)
    assert done.status_code == 302, done.text
    forward_auth(client, done.headers["location"], nginx=False)  # the ticket, on the preview host


def processes(control_plane, tmp: Path) -> Scrapes:  # type: ignore[no-untyped-def]
    """Scrapes of a real broker and a real controller process, the controller leading and one preview Ready."""
    cp = control_plane
    suffix = uuid.uuid4().hex[:6]
    namespace, preview = f"pb-ops-{suffix}", f"pr-ops-{suffix}"
    host = f"{preview}.{PREVIEW_DOMAIN}"
    kubeconfig = cp.write_kubeconfig(tmp / "admin.kubeconfig", cp.admin_token)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
    with cp.client() as admin:
        admin.post("/api/v1/namespaces", json={"metadata": {"name": namespace}}).raise_for_status()
        admin.post("/api/v1/namespaces", json={"metadata": {
            "name": preview, "labels": {"preview-broker.io/preview": "true"},
            "annotations": {"preview-broker.io/host": host}}}).raise_for_status()
    controller_port, broker_port, broker_metrics = free_port(), free_port(), free_port()
    public = f"http://auth.{PREVIEW_DOMAIN}:{broker_port}"  # the broker's own host is a name, never an address
    controller = Proc("controller", [sys.executable, "-m", "preview_broker", "controller",
                                     "--metrics-port", str(controller_port)], tmp / "controller.log", env={
        **base, "KUBECONFIG": str(kubeconfig), "PREVIEW_BROKER_PREVIEW_DOMAINS": PREVIEW_DOMAIN,
        "PREVIEW_BROKER_PUBLIC_URL": public, "PREVIEW_BROKER_KUBE_NAMESPACE": namespace, "PREVIEW_BROKER_LEASE_NAME": f"ops-{suffix}",
        "PREVIEW_BROKER_NAMESPACE_SELECTOR": f"preview-broker.io/preview=true,kubernetes.io/metadata.name={preview}",
    }).start()
    with _fake_github() as github:
        broker = Proc("broker", [sys.executable, "-m", "preview_broker", "broker", "--host", "127.0.0.1",
                                 "--port", str(broker_port), "--metrics-port", str(broker_metrics)],
                      tmp / "broker.log", env={
            **base, "KUBECONFIG": str(kubeconfig), "PREVIEW_BROKER_PUBLIC_URL": public,
            "PREVIEW_BROKER_ALLOW_HTTP": "true", "PREVIEW_BROKER_PREVIEW_DOMAINS": PREVIEW_DOMAIN,
            "PREVIEW_BROKER_ALLOWLIST_SOURCE": "static", "PREVIEW_BROKER_ALLOWED_HOSTS": f"pr-1.{PREVIEW_DOMAIN}",
            "PREVIEW_BROKER_PROVIDER": "github", "PREVIEW_BROKER_GITHUB_URL": github,
            "PREVIEW_BROKER_CLIENT_ID": "Iv1.ops", "PREVIEW_BROKER_CLIENT_SECRET": "ops-secret",
            "PREVIEW_BROKER_SECRET_KEYS": "ops-signing-key-" + "k" * 32,
            "PREVIEW_BROKER_ALLOWED_EMAIL_DOMAINS": "example.com",
        }).start()
        try:
            wait_until(http_ok(f"http://127.0.0.1:{broker_port}/readyz"), "broker ready", 30, broker)
            wait_until(lambda: _ready_previews(f"http://127.0.0.1:{controller_port}/metrics") >= 1,
                       "the controller leading, with the preview Ready", 60, controller)
            with httpx.Client(base_url=public, follow_redirects=False, transport=_Loopback()) as client:
                _broker_traffic(client, lambda: _github_login(client))
                b1 = httpx.get(f"http://127.0.0.1:{broker_metrics}/metrics").text
                c1 = httpx.get(f"http://127.0.0.1:{controller_port}/metrics").text
                _broker_traffic(client, lambda: _github_login(client))
                with cp.client() as admin:  # some controller work between the scrapes
                    admin.patch(f"/api/v1/namespaces/{preview}",
                                json={"metadata": {"annotations": {"preview-broker.io/ttl": "72h"}}},
                                headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
                time.sleep(1.5)
                b2 = httpx.get(f"http://127.0.0.1:{broker_metrics}/metrics").text
                c2 = httpx.get(f"http://127.0.0.1:{controller_port}/metrics").text
        finally:
            broker.stop()
            controller.stop()
            with cp.client() as admin:
                for name in (preview, namespace):
                    admin.delete(f"/api/v1/namespaces/{name}")
    return {"broker": (b1, b2), "controller": (c1, c2)}


def _ready_previews(url: str) -> float:
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return 0
    line = next((x for x in text.splitlines() if x.startswith('preview_broker_previews{phase="Ready"}')), "")
    return float(line.rsplit(" ", 1)[1]) if line else 0

"""The end-to-end gate round trip once more, against the broker the chart runs on the node.

As deployed: Traefik (a host process here) reads the cluster's Ingresses, so the chart's own
Ingress routes https://auth.preview.test/oauth2 to the broker pods, and a ForwardAuth middleware
asks the broker's Service. The brokers in their pods reach Dex over https on the node's address
(trusting this run's CA through their token volume's ca.crt), the in-cluster controller publishes
the preview's host, and a real browser logs in through all of it. The preview itself is the
e2e suite's sample app behind an ExternalName Service (tests/support/stack.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.browser import launch
from tests.support.dex import DEX_USER_EMAIL
from tests.support.e2eflows import DEEP, gate_login
from tests.support.node import BROKER, NAMESPACE, Release
from tests.support.procs import Proc, free_port, wait_until
from tests.support.stack import (
    AUTH_REQUEST_HEADERS,
    DOMAIN,
    IDENTITY_HEADERS,
    Preview,
    Stack,
    start_app,
    traefik_binary,
)

pytestmark = [pytest.mark.node, pytest.mark.cluster, pytest.mark.e2e]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "node"


def _start_traefik(stack: Stack, auth_service: str) -> Proc:
    """Traefik on loopback: the Ingresses of the cluster, and forward auth asking the broker's Service."""
    dynamic = stack.workdir / "traefik-dynamic.yaml"
    assert stack.certs is not None
    dynamic.write_text(yaml.safe_dump({
        "http": {"middlewares": {"preview-auth": {"forwardAuth": {
            "address": f"http://{auth_service}/oauth2/auth?redirect=true",
            "authRequestHeaders": AUTH_REQUEST_HEADERS,
            "authResponseHeaders": IDENTITY_HEADERS,
        }}}},
        "tls": {"stores": {"default": {"defaultCertificate": {
            "certFile": str(stack.certs.cert_file), "keyFile": str(stack.certs.key_file)}}}},
    }))
    cp = stack.cp
    return Proc("traefik", [
        traefik_binary(),
        f"--entrypoints.websecure.address=127.0.0.1:{stack.port}",
        "--entrypoints.websecure.http.tls=true",
        f"--entrypoints.web.address=127.0.0.1:{stack.http_port}",
        "--providers.kubernetesingress=true",
        "--providers.kubernetesingress.ingressclass=traefik",
        "--providers.kubernetesingress.allowexternalnameservices=true",
        f"--providers.kubernetesingress.endpoint={cp.api_url}",
        f"--providers.kubernetesingress.token={cp.admin_token}",
        f"--providers.kubernetesingress.certauthfilepath={cp.ca_file}",
        f"--providers.file.filename={dynamic}",
        "--log.level=INFO",
        "--global.checknewversion=false",
        "--global.sendanonymoususage=false",
        "--accesslog=true",
    ], stack.workdir / "traefik.log").start()


@pytest.fixture(scope="module")
def stack(release: Release, tmp_path_factory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("node-e2e")
    node = release.node
    s = Stack(workdir, node.cp, release.dex, "https", release.public_port, free_port(), 0, [], release.certs, {}, {})
    try:
        with node.cp.client() as c:
            r = c.post("/apis/networking.k8s.io/v1/ingressclasses",
                       json={"metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}})
            assert r.status_code in (201, 409), r.text
        s.procs["traefik"] = _start_traefik(s, f"{release.service_ip(BROKER)}:80")

        def broker_routed() -> bool:  # the chart's Ingress, through Traefik, to a broker pod
            with s.client() as c:
                return c.get(f"{s.broker_url}/oauth2/sign_out").status_code == 200

        wait_until(broker_routed, "Traefik routing the chart's Ingress to the broker pods", 60, s.procs["traefik"])
        preview = Preview("pr-1", f"pr-1.{DOMAIN}", "gate-traefik", free_port())
        start_app(s, preview)
        s.add_preview(preview)
        s.wait_routable("pr-1")
        yield s
    finally:
        for p in s.procs.values():
            p.stop()
        with node.cp.client() as c:
            c.delete("/api/v1/namespaces/pr-1")


@pytest.fixture
def page(stack: Stack, request):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p, *stack.browser_args())
        context = browser.new_context()
        pg = context.new_page()
        try:
            yield pg
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
            browser.close()


def test_gate_mode_deep_link_round_trip_through_traefik_to_the_in_cluster_broker(page, stack: Stack,
                                                                                 release: Release) -> None:
    gate_login(page, stack, "pr-1")
    assert page.text_content("#user") == "admin"
    assert page.text_content("#email") == DEX_USER_EMAIL
    assert page.text_content("#path") == DEEP
    # The brokers that did it are the pods: they logged the login and the session they issued.
    logs = release.node.pod_logs(NAMESPACE, BROKER, lines=100_000)
    assert '"login_authorized"' in logs and '"session_issued"' in logs and f"pr-1.{DOMAIN}" in logs

"""`helm install` on a real node: the chart's pods start from the built image and work from inside.

What only a running pod shows: the image's entry point and arguments, the probes, the ports,
the read-only root filesystem with its writable /tmp, the security context the kernel enforces
(non-root, no capabilities, no privilege gain, RuntimeDefault seccomp), the ServiceAccount token
the controller holds its Lease with, and the Services in front of the pods.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.node import BROKER, CONTROLLER, NAMESPACE, Release
from tests.support.procs import wait_until
from tests.support.stack import DOMAIN

pytestmark = [pytest.mark.node, pytest.mark.cluster]


def test_every_pod_runs_the_loaded_image_and_is_ready_through_its_probes(release: Release) -> None:
    for component, replicas in (("broker", 2), ("controller", 2)):
        pods = release.pods(component)
        assert len(pods) == replicas, [p["metadata"]["name"] for p in pods]
        for pod in pods:
            conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
            assert pod["status"]["phase"] == "Running" and conditions["Ready"] == "True", pod["status"]
            (status,) = pod["status"]["containerStatuses"]
            assert status["ready"] and status["restartCount"] == 0, status
            assert status["image"] == release.image
            assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"
            assert pod["status"]["podIP"].startswith("10.244.0.")
    (broker,) = release.pods("broker")[:1]
    probe = broker["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe["path"] == "/readyz"  # so Ready above means the broker's own /readyz said so


def test_the_controller_holds_the_lease_from_inside_the_cluster(release: Release) -> None:
    controllers = {p["metadata"]["name"]: p for p in release.pods("controller")}
    with release.node.cp.client() as c:
        def lease() -> dict:
            return c.get(f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{CONTROLLER}").json()["spec"]

        wait_until(lambda: lease().get("holderIdentity") in controllers, "a controller pod holding the Lease", 60)
        first = lease()
        holder = controllers[first["holderIdentity"]]
        assert holder["spec"]["serviceAccountName"] == CONTROLLER
        assert any(v.get("projected") for v in holder["spec"]["volumes"])  # the token the kubelet mounted
        # Renewed, by the same pod: the lease is held, not merely once taken.
        wait_until(lambda: lease()["renewTime"] != first["renewTime"], "the Lease renewed", 30)
        assert lease()["holderIdentity"] == first["holderIdentity"]


def test_the_broker_answers_through_its_service(release: Release) -> None:
    ip = release.service_ip(BROKER)
    assert httpx.get(f"http://{ip}:80/readyz", timeout=10).text == "ready"
    assert httpx.get(f"http://{ip}:80/healthz", timeout=10).text == "ok"
    # /metrics on its own port of the Service, never on the public one.
    assert "preview_broker_" in httpx.get(f"http://{ip}:9090/metrics", timeout=10).text
    assert httpx.get(f"http://{ip}:80/metrics", timeout=10).status_code == 404


def test_a_preview_namespace_reaches_the_in_cluster_brokers_allowlist(release: Release) -> None:
    """Namespace -> in-cluster controller -> PreviewEnvironment -> brokers' watch -> forward auth."""
    name = f"pr-node-{uuid.uuid4().hex[:6]}"
    host = f"{name}.{DOMAIN}"
    ip = release.service_ip(BROKER)

    def forward_auth() -> int:  # as Traefik's ForwardAuth asks about a request for `host`
        return httpx.get(f"http://{ip}:80/oauth2/auth", timeout=10, headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": host, "X-Forwarded-Uri": "/",
            "X-Forwarded-Method": "GET"}).status_code

    assert forward_auth() == 403  # not a live preview
    with release.node.cp.client() as c:
        c.post("/api/v1/namespaces", json={"metadata": {
            "name": name, "labels": {"preview-broker.io/preview": "true"},
            "annotations": {"preview-broker.io/host": host}}}).raise_for_status()
        try:
            wait_until(lambda: forward_auth() == 401, f"{host} live in both brokers' allowlists", 60)
            for _ in range(6):  # whichever replica the Service picks
                assert forward_auth() == 401
        finally:
            c.delete(f"/api/v1/namespaces/{name}")
    wait_until(lambda: forward_auth() == 403, f"{host} refused again once its namespace goes", 60)


def test_the_kernel_enforces_the_charts_security_context(release: Release) -> None:
    for component in ("broker", "controller"):
        pod = release.pods(component)[0]["metadata"]["name"]
        pid = release.node.container_pid(NAMESPACE, pod, component)
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if ":\t" in line)
        assert status["Uid"].split()[:2] == ["10001", "10001"] and status["Gid"].split()[0] == "10001"
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0
        assert status["NoNewPrivs"].strip() == "1"
        assert status["Seccomp"].strip() == "2"  # a filter: RuntimeDefault, applied by runc with libseccomp
        mounts = {line.split()[4]: line.split()[5] for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()}
        assert mounts["/"].split(",")[0] == "ro"
        assert mounts["/tmp"].split(",")[0] == "rw"


def test_a_killed_broker_is_replaced_and_ready_again(release: Release) -> None:
    """The Deployment, the scheduler, the kubelet and the probes together: a pod lost is a pod back."""
    victim = release.pods("broker")[0]["metadata"]["name"]
    with release.node.cp.client() as c:
        c.delete(f"/api/v1/namespaces/{NAMESPACE}/pods/{victim}").raise_for_status()

    def two_others_ready() -> bool:
        pods = [p for p in release.pods("broker") if p["metadata"]["name"] != victim
                and not p["metadata"].get("deletionTimestamp")]
        return len(pods) == 2 and all(
            {c["type"]: c["status"] for c in p["status"].get("conditions", [])}.get("Ready") == "True" for p in pods)

    wait_until(two_others_ready, "a new broker pod Ready", 120)
    ip = release.service_ip(BROKER)
    assert httpx.get(f"http://{ip}:80/readyz", timeout=10).text == "ready"

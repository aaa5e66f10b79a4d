"""helm install into the real apiserver, then both components run with the chart's own ServiceAccounts.

The controller and the broker run as local processes whose only credentials are
TokenRequest tokens of the ServiceAccounts the chart created, with the
environment the chart's Deployments declare: they work with exactly the RBAC the
chart grants, and the broker's account is refused any write.
"""

from __future__ import annotations

import base64
import os
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.controlplane import ControlPlane
from tests.support.helm import CHART, helm
from tests.support.procs import Proc, free_port, http_ok, wait_until

pytestmark = pytest.mark.cluster
NS = "preview-broker"
RELEASE = "pb"
VALUES = CHART / "ci" / "oidc-values.yaml"


def _token(cp: ControlPlane, sa: str) -> str:
    with cp.client() as c:
        r = c.post(f"/api/v1/namespaces/{NS}/serviceaccounts/{sa}/token",
                   json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 3600}})
        assert r.status_code == 201, r.text
        return r.json()["status"]["token"]


def _container_env(cp: ControlPlane, deployment: str, overrides: dict[str, str], files: Path) -> dict[str, str]:
    """The env the chart declares for a Deployment, resolved as the kubelet would: the Secret volumes it
    mounts are written under `files`, and settings naming a path in them point there."""
    with cp.client() as c:
        dep = c.get(f"/apis/apps/v1/namespaces/{NS}/deployments/{deployment}").json()
        env: dict[str, str] = {}
        pod = dep["spec"]["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0].get("volumeMounts", [])}
        moved: dict[str, Path] = {}
        for volume in pod.get("volumes", []):
            if "secret" not in volume or volume["name"] not in mounts:
                continue
            secret = c.get(f"/api/v1/namespaces/{NS}/secrets/{volume['secret']['secretName']}").json()
            target = files / deployment / volume["name"]
            target.mkdir(parents=True)
            for item in volume["secret"].get("items") or [{"key": k, "path": k} for k in secret["data"]]:
                (target / item["path"]).write_bytes(base64.b64decode(secret["data"][item["key"]]))
            moved[mounts[volume["name"]]] = target
        for item in dep["spec"]["template"]["spec"]["containers"][0]["env"]:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                secret = c.get(f"/api/v1/namespaces/{NS}/secrets/{ref['name']}").json()
                env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
            elif "fieldRef" in item.get("valueFrom", {}):
                env[item["name"]] = f"{deployment}-local"
        for name, value in env.items():
            for mount, target in moved.items():
                if value.startswith(mount + "/"):
                    env[name] = str(target / value[len(mount) + 1:])
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREVIEW_BROKER_")}
    return {**base, **env, **overrides}


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> ControlPlane:
    out = helm("install", RELEASE, str(CHART), "-f", str(VALUES), "--namespace", NS, "--create-namespace",
               "--kubeconfig", str(control_plane.kubeconfig), "--wait=false")
    assert "STATUS: deployed" in out.stdout
    assert "/oauth2/callback" in out.stdout
    return control_plane


def test_install_created_the_workloads(installed: ControlPlane) -> None:
    with installed.client() as c:
        for kind, name in [("deployments", "pb-preview-broker-broker"), ("deployments", "pb-preview-broker-controller")]:
            assert c.get(f"/apis/apps/v1/namespaces/{NS}/{kind}/{name}").status_code == 200
        assert c.get(f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets/pb-preview-broker-broker").status_code == 200


def test_components_work_with_exactly_the_chart_rbac(installed: ControlPlane, tmp_path: Path) -> None:
    cp = installed
    controller_cfg = cp.write_kubeconfig(tmp_path / "controller.kubeconfig",
                                         _token(cp, "pb-preview-broker-controller"), "controller")
    broker_cfg = cp.write_kubeconfig(tmp_path / "broker.kubeconfig", _token(cp, "pb-preview-broker-broker"), "broker")
    controller_env = _container_env(cp, "pb-preview-broker-controller", {"KUBECONFIG": str(controller_cfg)}, tmp_path)
    controller = Proc("controller", [sys.executable, "-m", "preview_broker", "controller", "--metrics-port", "0"],
                      tmp_path / "controller.log", env=controller_env).start()
    port = free_port()
    broker_env = _container_env(cp, "pb-preview-broker-broker", {
        "KUBECONFIG": str(broker_cfg),
        # The ci values name an OIDC issuer that does not exist here; GitHub needs no discovery.
        "PREVIEW_BROKER_PROVIDER": "github",
        "PREVIEW_BROKER_OIDC_ISSUER": "",
    }, tmp_path)
    broker = Proc("broker", [sys.executable, "-m", "preview_broker", "broker", "--host", "127.0.0.1", "--port", str(port),
                             "--metrics-port", "0"],
                  tmp_path / "broker.log", env=broker_env).start()
    try:
        wait_until(http_ok(f"http://127.0.0.1:{port}/readyz"), "broker ready with its own token", 30, broker)
        host = f"helm-{uuid.uuid4().hex[:6]}.preview.example.com"
        name = f"pr-helm-{uuid.uuid4().hex[:6]}"
        with cp.client() as admin:
            admin.post("/api/v1/namespaces", json={"metadata": {
                "name": name, "labels": {"preview-broker.io/preview": "true"},
                "annotations": {"preview-broker.io/host": host}}}).raise_for_status()

            def relay_status() -> int:  # a relay start for the ci values' app client: 302 once the host is live
                return httpx.get(
                    f"http://127.0.0.1:{port}/oauth2/relay",
                    params={"return_to": f"https://{host}/cb", "client_id": "pr-app", "response_type": "code"},
                    headers={"host": "auth.preview.example.com", "referer": f"https://{host}/"},
                ).status_code

            wait_until(lambda: relay_status() == 302, "host accepted through the chart's RBAC", 30, controller)
            pe = admin.get(f"/apis/preview-broker.io/v1alpha1/previewenvironments/{name}").json()
            assert pe["status"]["phase"] == "Ready"
            # events: create is granted (the event follows the status patch, so wait for it)
            wait_until(lambda: any(e["reason"] == "Ready" for e in
                                   admin.get(f"/api/v1/namespaces/{name}/events").json()["items"]),
                       "Ready event recorded with the chart's RBAC", 20, controller)
            # Expiry with expiryAction=delete exercises the namespace delete permission.
            admin.patch(f"/api/v1/namespaces/{name}",
                        json={"metadata": {"annotations": {"preview-broker.io/expires-at": "2000-01-01T00:00:00Z"}}},
                        headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
            wait_until(lambda: relay_status() == 400, "expired host refused", 30, controller)

            def namespace_deleted() -> bool:
                r = admin.get(f"/api/v1/namespaces/{name}")
                return r.status_code == 404 or r.json()["metadata"].get("deletionTimestamp") is not None

            wait_until(namespace_deleted, "expired namespace deleted by the controller", 30, controller)
            lease = admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/pb-preview-broker-controller")
            assert lease.json()["spec"]["holderIdentity"] == "pb-preview-broker-controller-local"
        log = (tmp_path / "controller.log").read_text()
        # RBAC refusals read 'User "system:serviceaccount:..." cannot <verb> resource ...'.
        assert "cannot " not in log, log[-2000:]
        # the controller process freezes its caches out of the cyclic GC once its queue is idle
        # after the first pass (checked every 0.5 s, so wait for it rather than race it)
        wait_until(lambda: '"caches_frozen"' in (tmp_path / "controller.log").read_text(),
                   "controller caches frozen after its first pass", 30, controller)
    finally:
        broker.stop()
        controller.stop()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/apis/preview-broker.io/v1alpha1/previewenvironments",
         {"apiVersion": "preview-broker.io/v1alpha1", "kind": "PreviewEnvironment", "metadata": {"name": "forged"}}),
        ("PATCH", "/apis/preview-broker.io/v1alpha1/previewenvironments/anything/status", {"status": {}}),
        ("POST", "/api/v1/namespaces", {"metadata": {"name": "forged"}}),
        ("GET", f"/api/v1/namespaces/{NS}/secrets", None),
        ("GET", "/api/v1/namespaces", None),
    ],
)
def test_broker_account_is_refused_writes_and_everything_else(installed: ControlPlane, method, path, body) -> None:
    token = _token(installed, "pb-preview-broker-broker")
    with installed.client(token) as c:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        r = c.request(method, path, json=body, headers=headers)
        assert r.status_code == 403, r.text


def test_broker_account_can_watch_the_allowlist(installed: ControlPlane) -> None:
    token = _token(installed, "pb-preview-broker-broker")
    with installed.client(token) as c:
        assert c.get("/apis/preview-broker.io/v1alpha1/previewenvironments").status_code == 200


def test_helm_uninstall(installed: ControlPlane) -> None:
    out = helm("uninstall", RELEASE, "--namespace", NS, "--kubeconfig", str(installed.kubeconfig))
    assert "uninstalled" in out.stdout
    helm("install", RELEASE, str(CHART), "-f", str(VALUES), "--namespace", NS, "--kubeconfig",
         str(installed.kubeconfig))

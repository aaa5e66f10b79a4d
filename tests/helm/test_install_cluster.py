"""helm install into the real apiserver, then both components run with the chart's own ServiceAccounts.

The controller and the broker run as local processes whose only credentials are
TokenRequest tokens of the ServiceAccounts the chart created, with the
environment the chart's Deployments declare: they work with exactly the RBAC the
chart grants (in each combination of add-ons and namespace deletion), and the
broker's account is refused any write.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.argocd import APPS, application, install_application_crd
from tests.support.controlplane import ControlPlane
from tests.support.helm import CHART, helm
from tests.support.procs import Proc, free_port, http_ok, wait_until

pytestmark = pytest.mark.cluster
NS = "preview-broker"
RELEASE = "pb"
VALUES = CHART / "ci" / "oidc-values.yaml"


def _token(cp: ControlPlane, sa: str, ns: str = NS) -> str:
    with cp.client() as c:
        r = c.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                   json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 3600}})
        assert r.status_code == 201, r.text
        return r.json()["status"]["token"]


def _container_env(cp: ControlPlane, deployment: str, overrides: dict[str, str], files: Path,
                   ns: str = NS) -> dict[str, str]:
    """The env the chart declares for a Deployment, resolved as the kubelet would: the Secret volumes it
    mounts are written under `files`, and settings naming a path in them point there."""
    with cp.client() as c:
        dep = c.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{deployment}").json()
        env: dict[str, str] = {}
        pod = dep["spec"]["template"]["spec"]
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0].get("volumeMounts", [])}
        moved: dict[str, Path] = {}
        for volume in pod.get("volumes", []):
            if "secret" not in volume or volume["name"] not in mounts:
                continue
            secret = c.get(f"/api/v1/namespaces/{ns}/secrets/{volume['secret']['secretName']}").json()
            target = files / deployment / volume["name"]
            target.mkdir(parents=True)
            for item in volume["secret"].get("items") or [{"key": k, "path": k} for k in secret["data"]]:
                (target / item["path"]).write_bytes(base64.b64decode(secret["data"].get(item["key"], "")))
            moved[mounts[volume["name"]]] = target
        for item in dep["spec"]["template"]["spec"]["containers"][0]["env"]:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif "secretKeyRef" in item.get("valueFrom", {}):
                ref = item["valueFrom"]["secretKeyRef"]
                secret = c.get(f"/api/v1/namespaces/{ns}/secrets/{ref['name']}").json()
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


@dataclass(frozen=True)
class Combo:
    """One configuration of the chart's rights: which add-ons run, and how (if at all) namespaces go."""

    name: str
    controller: dict[str, Any]  # values on top of ci/oidc-values.yaml
    database: bool = False
    bucket: bool = False
    deletes: str = ""  # "", "expiry" or "close" (an Argo CD Application that is gone)


DB = {"enabled": True, "destinationPath": "s3://backups/main", "sourceName": "main", "s3Secret": "aws"}
COMBOS = [
    # The chart's defaults: no add-on, no namespace delete. The CRDs of both add-ons are served all the
    # same, so a controller that watched them would be refused (and say "cannot list" in its log).
    Combo("defaults", {"expiryAction": "revoke"}),
    Combo("no-add-ons+delete-on-expiry", {"expiryAction": "delete"}, deletes="expiry"),
    Combo("database+delete-on-close", {"expiryAction": "revoke", "database": DB, "argocd": {"namespace": "argocd"},
                                       "closed": {"action": "delete", "grace": "0s"}}, database=True, deletes="close"),
    Combo("database+bucket", {"expiryAction": "revoke", "database": DB, "bucket": {"enabled": True}},
          database=True, bucket=True),
]


@contextlib.contextmanager
def _components(cp: ControlPlane, ns: str, release: str, tmp_path: Path) -> Iterator[tuple[Proc, int]]:
    """The controller and a broker as local processes with the chart's env and only its accounts' tokens."""
    full = f"{release}-preview-broker"
    controller_cfg = cp.write_kubeconfig(tmp_path / "controller.kubeconfig",
                                         _token(cp, f"{full}-controller", ns), "controller")
    broker_cfg = cp.write_kubeconfig(tmp_path / "broker.kubeconfig", _token(cp, f"{full}-broker", ns), "broker")
    controller_env = _container_env(cp, f"{full}-controller", {"KUBECONFIG": str(controller_cfg)}, tmp_path, ns)
    controller = Proc("controller", [sys.executable, "-m", "preview_broker", "controller", "--metrics-port", "0"],
                      tmp_path / "controller.log", env=controller_env).start()
    port = free_port()
    broker_env = _container_env(cp, f"{full}-broker", {
        "KUBECONFIG": str(broker_cfg),
        # The ci values name an OIDC issuer that does not exist here; GitHub needs no discovery.
        "PREVIEW_BROKER_PROVIDER": "github",
        "PREVIEW_BROKER_OIDC_ISSUER": "",
    }, tmp_path, ns)
    broker = Proc("broker", [sys.executable, "-m", "preview_broker", "broker", "--host", "127.0.0.1", "--port", str(port),
                             "--metrics-port", "0"],
                  tmp_path / "broker.log", env=broker_env).start()
    try:
        wait_until(http_ok(f"http://127.0.0.1:{port}/readyz"), "broker ready with its own token", 30, broker)
        yield controller, port
    finally:
        broker.stop()
        controller.stop()


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: c.name)
def test_the_controller_does_its_job_with_exactly_the_chart_rbac(control_plane: ControlPlane, combo: Combo,
                                                                 tmp_path: Path) -> None:
    """Issue 25, item 9: each combination of add-ons and deletion, installed with the rights the chart grants
    for it, runs the controller's whole job with no refusal; what it may not do, it does not try."""
    cp = control_plane
    tag = uuid.uuid4().hex[:6]
    ns, release = f"pbc-{tag}", f"c{tag}"
    if combo.deletes == "close":
        install_application_crd(cp)  # and the argocd namespace the chart's Role goes into
    values = tmp_path / "values.yaml"
    # Only this release's controller sees this test's previews (every release's is cluster-wide).
    values.write_text(yaml.safe_dump({"controller": {
        **combo.controller, "namespaceSelector": f"preview-broker.io/preview=true,pb-combo={tag}"}}))
    helm("install", release, str(CHART), "-f", str(VALUES), "-f", str(values), "--namespace", ns,
         "--create-namespace", "--kubeconfig", str(cp.kubeconfig), "--wait=false")
    try:
        with _components(cp, ns, release, tmp_path) as (controller, port), cp.client() as admin:
            _preview_lifecycle(admin, combo, tag, port, controller)
            controller_log = (tmp_path / "controller.log").read_text()
            # RBAC refusals read 'User "system:serviceaccount:..." cannot <verb> resource ...'.
            assert "cannot " not in controller_log, controller_log[-2000:]
            lease = admin.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/c{tag}-preview-broker-controller")
            assert lease.json()["spec"]["holderIdentity"] == f"c{tag}-preview-broker-controller-local"
            # the controller process freezes its caches out of the cyclic GC once its queue is idle
            # after the first pass (checked every 0.5 s, so wait for it rather than race it)
            wait_until(lambda: '"caches_frozen"' in (tmp_path / "controller.log").read_text(),
                       "controller caches frozen after its first pass", 30, controller)
    finally:
        helm("uninstall", release, "--namespace", ns, "--kubeconfig", str(cp.kubeconfig))


def _preview_lifecycle(admin: httpx.Client, combo: Combo, tag: str, port: int, controller: Proc) -> None:
    host = f"helm-{tag}.preview.example.com"
    name = f"pr-helm-{tag}"
    annotations = {"preview-broker.io/host": host, "preview-broker.io/database": "true",
                   "preview-broker.io/bucket": "true"}  # asked for whether or not the add-on runs
    if combo.deletes == "close":  # its Argo CD Application exists until the "pull request closes"
        admin.post(APPS.format(namespace="argocd"), json=application(f"app-{tag}")).raise_for_status()
        annotations["preview-broker.io/argocd-application"] = f"argocd/app-{tag}"
    admin.post("/api/v1/namespaces", json={"metadata": {
        "name": name, "labels": {"preview-broker.io/preview": "true", "pb-combo": tag},
        "annotations": annotations}}).raise_for_status()

    def relay_status() -> int:  # a relay start for the ci values' app client: 302 once the host is live
        return httpx.get(
            f"http://127.0.0.1:{port}/oauth2/relay",
            params={"return_to": f"https://{host}/cb", "client_id": "pr-app", "response_type": "code"},
            headers={"host": "auth.preview.example.com", "referer": f"https://{host}/"},
        ).status_code

    def events() -> list[dict]:
        return admin.get(f"/api/v1/namespaces/{name}/events").json()["items"]

    def namespace_deleted() -> bool:
        r = admin.get(f"/api/v1/namespaces/{name}")
        return r.status_code == 404 or r.json()["metadata"].get("deletionTimestamp") is not None

    wait_until(lambda: relay_status() == 302, "host accepted through the chart's RBAC", 30, controller)
    objects = {"Cluster": f"/apis/postgresql.cnpg.io/v1/namespaces/{name}/clusters/preview-db",
               "ObjectStore": f"/apis/barmancloud.cnpg.io/v1/namespaces/{name}/objectstores/preview-db-origin",
               "Bucket": f"/apis/s3.services.k8s.aws/v1alpha1/namespaces/{name}/buckets/preview-bucket"}
    wanted = {"Cluster": combo.database, "ObjectStore": combo.database, "Bucket": combo.bucket}
    for kind, path in objects.items():
        if wanted[kind]:
            wait_until(lambda p=path: admin.get(p).status_code == 200, f"{kind} created with the chart's RBAC",
                       30, controller)
    wait_until(lambda: any(e["reason"] in ("Ready", "Provisioning") for e in events()),
               "phase event recorded with the chart's RBAC", 20, controller)
    off = [a for a, on in (("database", combo.database), ("bucket", combo.bucket)) if not on]
    wait_until(lambda: sorted(e["message"].split("=")[0].rsplit("/", 1)[1] for e in events()
                              if e["reason"] == "AddonDisabled") == sorted(off),
               "a Warning for each add-on asked for that is off", 20, controller)
    for kind, path in objects.items():
        if not wanted[kind]:
            assert admin.get(path).status_code == 404, f"{kind} created although its add-on is off"
    if combo.deletes == "close":  # the Application goes: closed at once, deleted after a grace of 0s
        admin.delete(f"{APPS.format(namespace='argocd')}/app-{tag}").raise_for_status()
        wait_until(lambda: relay_status() == 400, "closed host refused", 30, controller)
        wait_until(namespace_deleted, "closed namespace deleted by the controller", 30, controller)
        return
    # Expiry: with expiryAction=delete it exercises the namespace delete permission; without, it revokes only.
    admin.patch(f"/api/v1/namespaces/{name}",
                json={"metadata": {"annotations": {"preview-broker.io/expires-at": "2000-01-01T00:00:00Z"}}},
                headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
    wait_until(lambda: relay_status() == 400, "expired host refused", 30, controller)
    if combo.deletes == "expiry":
        wait_until(namespace_deleted, "expired namespace deleted by the controller", 30, controller)
    else:
        wait_until(lambda: any(e["reason"] == "Expired" for e in events()), "Expired event", 20, controller)
        assert not namespace_deleted() and not any(e["reason"] == "Deleting" for e in events())


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

"""Proof that the test control plane is a real one: controllers, RBAC, TokenRequest, CRD schemas."""

from __future__ import annotations

import uuid

import pytest

from tests.support.controlplane import ControlPlane
from tests.support.procs import wait_until

pytestmark = pytest.mark.cluster


def _ns(cp: ControlPlane) -> str:
    name = f"proof-{uuid.uuid4().hex[:8]}"
    with cp.client() as c:
        assert c.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    return name


def test_namespace_is_created_filled_deleted_and_really_disappears(control_plane: ControlPlane) -> None:
    ns = _ns(control_plane)
    with control_plane.client() as c:
        for i in range(3):
            r = c.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})
            assert r.status_code == 201
        assert c.delete(f"/api/v1/namespaces/{ns}").status_code == 200
        assert c.get(f"/api/v1/namespaces/{ns}").json()["status"]["phase"] == "Terminating"
        wait_until(lambda: c.get(f"/api/v1/namespaces/{ns}").status_code == 404, "namespace gone", 60)


def test_owned_object_is_garbage_collected(control_plane: ControlPlane) -> None:
    ns = _ns(control_plane)
    with control_plane.client() as c:
        owner = c.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "owner"}}).json()
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
        r = c.post(
            f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "owned", "ownerReferences": [ref]}}
        )
        assert r.status_code == 201
        assert c.delete(f"/api/v1/namespaces/{ns}/configmaps/owner").status_code == 200
        wait_until(
            lambda: c.get(f"/api/v1/namespaces/{ns}/configmaps/owned").status_code == 404, "owned object collected", 60
        )


def test_service_account_token_authenticates_and_rbac_denies_the_rest(control_plane: ControlPlane) -> None:
    ns = _ns(control_plane)
    with control_plane.client() as c:
        assert c.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "reader"}}).status_code == 201
        c.post(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
            json={
                "metadata": {"name": "cm-reader"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
            },
        ).raise_for_status()
        c.post(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
            json={
                "metadata": {"name": "cm-reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}],
            },
        ).raise_for_status()
        tr = c.post(
            f"/api/v1/namespaces/{ns}/serviceaccounts/reader/token",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}},
        )
        assert tr.status_code == 201, tr.text
        token = tr.json()["status"]["token"]
    with control_plane.client(token) as sa:
        assert sa.get(f"/api/v1/namespaces/{ns}/configmaps").status_code == 200
        assert sa.get(f"/api/v1/namespaces/{ns}/secrets").status_code == 403
        assert sa.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "x"}}).status_code == 403
        who = sa.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        ).json()
        assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:reader"
    with control_plane.client("not-a-token") as anon:
        assert anon.get(f"/api/v1/namespaces/{ns}/configmaps").status_code == 401


def _cluster(**spec_overrides) -> dict:
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "db"},
        "spec": {"instances": 1, "storage": {"size": "1Gi"}, **spec_overrides},
    }


def test_cnpg_cluster_schema_accepts_valid_and_rejects_wrong_fields(control_plane: ControlPlane) -> None:
    ns = _ns(control_plane)
    base = f"/apis/postgresql.cnpg.io/v1/namespaces/{ns}/clusters"
    with control_plane.client() as c:
        bad_type = c.post(base, json=_cluster(instances="three"))
        assert bad_type.status_code == 422, bad_type.text
        assert "spec.instances" in bad_type.text
        unknown = c.post(base, json=_cluster(instancez=2), params={"fieldValidation": "Strict"})
        assert unknown.status_code == 400 and "instancez" in unknown.text  # strict decoding: 400
        bad_enum = c.post(base, json=_cluster(primaryUpdateStrategy="sometimes"))
        assert bad_enum.status_code == 422
        assert c.post(base, json=_cluster()).status_code == 201


def test_ack_bucket_and_objectstore_crds_are_served(control_plane: ControlPlane) -> None:
    ns = _ns(control_plane)
    with control_plane.client() as c:
        bucket = {"apiVersion": "s3.services.k8s.aws/v1alpha1", "kind": "Bucket", "metadata": {"name": "b"}, "spec": {"name": "preview-b"}}
        assert c.post(f"/apis/s3.services.k8s.aws/v1alpha1/namespaces/{ns}/buckets", json=bucket).status_code == 201
        nameless = {**bucket, "metadata": {"name": "b2"}, "spec": {}}
        assert c.post(f"/apis/s3.services.k8s.aws/v1alpha1/namespaces/{ns}/buckets", json=nameless).status_code == 422
        store = {
            "apiVersion": "barmancloud.cnpg.io/v1",
            "kind": "ObjectStore",
            "metadata": {"name": "backups"},
            "spec": {"configuration": {"destinationPath": "s3://backups/main"}},
        }
        r = c.post(f"/apis/barmancloud.cnpg.io/v1/namespaces/{ns}/objectstores", json=store)
        assert r.status_code == 201, r.text

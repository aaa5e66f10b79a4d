"""Argo CD's Application kind on the test control plane, as far as the controller reads it: names.

The real CRD ships with Argo CD (not fetched by scripts/testbin); the controller
only lists and watches Applications to learn which still exist, so a CRD with
the real group, version, kind and scope (and an open schema) is what it needs.
"""

from __future__ import annotations

from tests.support.controlplane import ControlPlane
from tests.support.procs import wait_until

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "applications.argoproj.io"},
    "spec": {
        "group": "argoproj.io",
        "scope": "Namespaced",
        "names": {"kind": "Application", "listKind": "ApplicationList", "plural": "applications",
                  "singular": "application", "shortNames": ["app", "apps"]},
        "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}
APPS = "/apis/argoproj.io/v1alpha1/namespaces/{namespace}/applications"


def install_application_crd(cp: ControlPlane, namespace: str = "argocd") -> None:
    """The CRD (Established) and the namespace Argo CD keeps its Applications in."""
    with cp.client() as c:
        r = c.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD)
        assert r.status_code in (201, 409), r.text
        r = c.post("/api/v1/namespaces", json={"metadata": {"name": namespace}})
        assert r.status_code in (201, 409), r.text

        def served() -> bool:
            return c.get(APPS.format(namespace=namespace)).status_code == 200

        wait_until(served, "Application CRD served", 30)


def application(name: str, namespace: str = "argocd") -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc"}}}

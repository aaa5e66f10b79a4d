"""Every kind the controller reads or writes, with its group, version and plural written once.

Watches, writes, discovery and the RBAC tests all take their paths and apiVersions from here:
`kinds.BUCKET.path("pr-1")` is `/apis/s3.services.k8s.aws/v1alpha1/namespaces/pr-1/buckets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from foundation import contract


@dataclass(frozen=True, slots=True)
class Kind:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True
    optional: bool = False  # served only where its CRD is installed: looked up at start

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None) -> str:
        """The collection: all namespaces (or a cluster-scoped kind) without `namespace`, else one."""
        scope = f"/namespaces/{namespace}" if namespace and self.namespaced else ""
        return f"{self.group_path}{scope}/{self.plural}"


# Kubernetes' own: always served.
NAMESPACE = Kind("Namespace", "", "v1", "namespaces", namespaced=False)
EVENT = Kind("Event", "", "v1", "events")
SERVICE = Kind("Service", "", "v1", "services")
INGRESS = Kind("Ingress", "networking.k8s.io", "v1", "ingresses")
# Ours (foundation/contract.py owns the names the brokers share).
PREVIEW = Kind(contract.KIND, contract.GROUP, contract.VERSION, contract.PLURAL, namespaced=False)
# Optional: used only where their CRDs are served (and their add-on is on).
CLUSTER = Kind("Cluster", "postgresql.cnpg.io", "v1", "clusters", optional=True)
OBJECT_STORE = Kind("ObjectStore", "barmancloud.cnpg.io", "v1", "objectstores", optional=True)
BUCKET = Kind("Bucket", "s3.services.k8s.aws", "v1alpha1", "buckets", optional=True)
# read only: a preview's Application gone = closed
APPLICATION = Kind("Application", "argoproj.io", "v1alpha1", "applications", optional=True)
HTTPROUTE = Kind("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes", optional=True)  # read only: hosts
MIDDLEWARE = Kind("Middleware", "traefik.io", "v1alpha1", "middlewares", optional=True)  # AUTH_WIRING=traefik

ALL = (NAMESPACE, EVENT, SERVICE, INGRESS, PREVIEW, CLUSTER, OBJECT_STORE, BUCKET, APPLICATION, HTTPROUTE, MIDDLEWARE)
BY_KIND = {k.kind: k for k in ALL}
OPTIONAL = tuple(k for k in ALL if k.optional)


def collection_path(obj: dict[str, Any]) -> str:
    """The collection an object of a known kind is created in."""
    return BY_KIND[obj["kind"]].path(obj["metadata"].get("namespace"))


def object_path(obj: dict[str, Any]) -> str:
    return f"{collection_path(obj)}/{obj['metadata']['name']}"

"""The objects a preview environment gets: pure builders, no I/O."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from controller import kinds
from controller.settings import ControllerSettings
from foundation import contract

DATABASE_NAME = "preview-db"
OBJECT_STORE_NAME = "preview-db-origin"
BUCKET_OBJECT_NAME = "preview-bucket"
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
ORIGIN = "origin"


def _labels() -> dict[str, str]:
    return {contract.LABEL_MANAGED: contract.MANAGER}


def bucket_name(namespace: str, uid: str, settings: ControllerSettings) -> str:
    """Deterministic, DNS-valid, globally unique S3 bucket name of at most 63 characters.

    prefix-namespace-<8 hex of the namespace UID>[-suffix]: the UID part keeps a
    re-created namespace of the same name from colliding with a bucket still
    being deleted; the suffix (e.g. the AWS account id) separates installations.
    """
    digest = hashlib.sha256(f"{namespace}/{uid}".encode()).hexdigest()[:8]
    suffix = f"-{settings.bucket_suffix}" if settings.bucket_suffix else ""
    fixed = f"-{digest}{suffix}"
    stem = re.sub(r"[^a-z0-9-]+", "-", f"{settings.bucket_prefix}-{namespace}".lower())
    stem = re.sub(r"-{2,}", "-", stem).strip("-")[: 63 - len(fixed)].rstrip("-")
    name = f"{stem}{fixed}"
    name = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    return name.strip("-")[:63]


EMPTY_BUCKET_FINALIZER = contract.PREFIX + "empty-bucket"


def bucket(namespace: str, uid: str, settings: ControllerSettings, *, retain: bool = False) -> dict[str, Any]:
    """The ACK Bucket; `retain` (the namespace opted out) keeps both the bucket and its data."""
    policy = "retain" if retain else settings.bucket_deletion_policy
    metadata: dict[str, Any] = {
        "name": BUCKET_OBJECT_NAME,
        "namespace": namespace,
        "labels": _labels(),
        # ACK reads the deletion policy from this annotation; explicit, never the controller default.
        "annotations": {"services.k8s.aws/deletion-policy": policy},
    }
    if policy == "delete":
        # Held until the controller has emptied the bucket (ACK cannot delete a non-empty one).
        metadata["finalizers"] = [EMPTY_BUCKET_FINALIZER]
    return {
        "apiVersion": kinds.BUCKET.api_version,
        "kind": kinds.BUCKET.kind,
        "metadata": metadata,
        "spec": {"name": bucket_name(namespace, uid, settings)},
    }


def _s3_credentials(settings: ControllerSettings) -> dict[str, Any]:
    if not settings.database_s3_secret:
        return {"inheritFromIAMRole": True}
    secret = settings.database_s3_secret
    return {
        "accessKeyId": {"name": secret, "key": "ACCESS_KEY_ID"},
        "secretAccessKey": {"name": secret, "key": "ACCESS_SECRET_KEY"},
    }


def database_objects(namespace: str, settings: ControllerSettings, *, target_time: str = "") -> list[dict[str, Any]]:
    """A CNPG Cluster recovered from the source's S3 backups, with no WAL archiving at all.

    Leaving out `spec.backup` (in-tree) and any WAL-archiver plugin (plugin form)
    is deliberate: a clone that archived into the source's path would corrupt
    the source cluster's backup catalogue.  The Barman Cloud plugin is the
    default form (CloudNativePG deprecates the in-tree barmanObjectStore since
    1.26): an ObjectStore names the backups, the Cluster's external cluster
    points at it.  `target_time` (RFC 3339) stops recovery at that moment.
    """
    storage: dict[str, Any] = {"size": settings.database_storage_size}
    if settings.database_storage_class:
        storage["storageClass"] = settings.database_storage_class
    recovery: dict[str, Any] = {"source": ORIGIN}
    if target_time:
        recovery["recoveryTarget"] = {"targetTime": target_time}
    spec: dict[str, Any] = {
        "instances": settings.database_instances,
        "storage": storage,
        "bootstrap": {"recovery": recovery},
    }
    if settings.database_image:
        spec["imageName"] = settings.database_image
    resources = settings.database_resources.model_dump(exclude_defaults=True)
    if resources:
        spec["resources"] = resources
    cluster: dict[str, Any] = {
        "apiVersion": kinds.CLUSTER.api_version,
        "kind": kinds.CLUSTER.kind,
        "metadata": {"name": DATABASE_NAME, "namespace": namespace, "labels": _labels()},
        "spec": spec,
    }
    server_name = settings.database_source_name or ORIGIN
    objects: list[dict[str, Any]] = []
    if settings.database_mode == "plugin":
        objects.append(
            {
                "apiVersion": kinds.OBJECT_STORE.api_version,
                "kind": kinds.OBJECT_STORE.kind,
                "metadata": {"name": OBJECT_STORE_NAME, "namespace": namespace, "labels": _labels()},
                "spec": {
                    "configuration": {
                        "destinationPath": settings.database_destination_path,
                        "s3Credentials": _s3_credentials(settings),
                        "wal": {"maxParallel": 8},
                    }
                },
            }
        )
        spec["externalClusters"] = [
            {
                "name": ORIGIN,
                "plugin": {
                    "name": BARMAN_PLUGIN,
                    "parameters": {"barmanObjectName": OBJECT_STORE_NAME, "serverName": server_name},
                },
            }
        ]
    else:
        spec["externalClusters"] = [
            {
                "name": ORIGIN,
                "barmanObjectStore": {
                    "destinationPath": settings.database_destination_path,
                    "serverName": server_name,
                    "s3Credentials": _s3_credentials(settings),
                    "wal": {"maxParallel": 8},
                },
            }
        ]
    objects.append(cluster)
    return objects


# The ForwardAuth request headers the broker reads besides the X-Forwarded-* ones Traefik writes itself
# (docs/security.md): every other client header stays away from the broker.
AUTH_REQUEST_HEADERS = ["Cookie", "Accept", "Origin", "Sec-Fetch-Site"]
IDENTITY_HEADERS = ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"]


def auth_wiring(namespace: str, mode: str, hosts: list[str], settings: ControllerSettings) -> list[dict[str, Any]]:
    """The objects that connect a preview's routes to the broker (mode traefik or nginx; none for off).

    traefik: a ForwardAuth Middleware an Ingress names in traefik.ingress.kubernetes.io/router.middlewares
    (<namespace>-preview-broker-auth@kubernetescrd) and an HTTPRoute in an ExtensionRef filter.
    nginx: an ExternalName Service to the broker, and an Ingress sending /oauth2/ of the preview's hosts
    there (ticket, sign-out, login start), for nginx.ingress.kubernetes.io/auth-url annotations.
    """
    from urllib.parse import urlsplit

    base = settings.broker_internal_url
    meta = {"namespace": namespace, "labels": _labels()}
    if mode == "traefik":
        return [{
            "apiVersion": kinds.MIDDLEWARE.api_version,
            "kind": kinds.MIDDLEWARE.kind,
            "metadata": {"name": contract.WIRING_MIDDLEWARE, **meta},
            "spec": {"forwardAuth": {
                "address": f"{base}/oauth2/auth?redirect=true",
                "authRequestHeaders": AUTH_REQUEST_HEADERS,
                "authResponseHeaders": IDENTITY_HEADERS,
            }},
        }]
    if mode != "nginx":
        return []
    parts = urlsplit(base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    objects: list[dict[str, Any]] = [{
        "apiVersion": kinds.SERVICE.api_version,
        "kind": kinds.SERVICE.kind,
        "metadata": {"name": contract.WIRING_SERVICE, **meta},
        "spec": {"type": "ExternalName", "externalName": parts.hostname,
                 "ports": [{"name": "http", "port": port, "targetPort": port}]},
    }]
    if hosts:  # an Ingress needs at least one rule; a preview without live hosts has nothing to route
        backend = {"service": {"name": contract.WIRING_SERVICE, "port": {"number": port}}}
        spec: dict[str, Any] = {"rules": [
            {"host": h, "http": {"paths": [{"path": "/oauth2", "pathType": "Prefix", "backend": backend}]}}
            for h in hosts]}
        if settings.auth_wiring_ingress_class:
            spec["ingressClassName"] = settings.auth_wiring_ingress_class
        objects.append({"apiVersion": kinds.INGRESS.api_version, "kind": kinds.INGRESS.kind,
                        "metadata": {"name": contract.WIRING_INGRESS, **meta}, "spec": spec})
    return objects


"""The database add-on: a CloudNativePG `Cluster` per preview, recovered from the source's S3 backups
(through the Barman Cloud plugin's `ObjectStore` by default)."""

from __future__ import annotations

from typing import Any

from controller import kinds
from controller.addons.base import Provisioned, conditions
from controller.settings import ControllerSettings, parse_rfc3339
from controller.times import Event, format_time
from controller.views import NamespaceView
from foundation import contract

DATABASE_NAME = "preview-db"
OBJECT_STORE_NAME = "preview-db-origin"
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
ORIGIN = "origin"


def _labels() -> dict[str, str]:
    return {contract.LABEL_MANAGED: contract.MANAGER}


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


def database_ready(cluster: Any) -> bool:
    """CloudNativePG: healthy phase AND the Ready condition (either alone can lag the other)."""
    if not cluster:
        return False
    phase = ((cluster.get("status") or {}).get("phase")) or ""
    return phase == "Cluster in healthy state" and conditions(cluster).get("Ready") == "True"


def _database_target(ns: NamespaceView, settings: ControllerSettings) -> tuple[str, Event | None]:
    raw = ns.annotations.get(contract.ANN_DATABASE_TARGET_TIME, "")
    if raw:
        try:
            return format_time(parse_rfc3339(raw)), None
        except ValueError:
            return settings.database_recovery_target_time, Event(
                "Warning", "InvalidDatabaseTarget", f"{contract.ANN_DATABASE_TARGET_TIME} is not RFC 3339; ignored")
    return settings.database_recovery_target_time, None


class Database(Provisioned):
    name = "database"
    annotation = contract.ANN_DATABASE
    observed = kinds.CLUSTER  # made last: once it exists, so does its ObjectStore
    watch_name = "cnpg-clusters"
    creates = (kinds.OBJECT_STORE, kinds.CLUSTER)

    def enabled(self, settings: ControllerSettings) -> bool:
        return settings.database_enabled

    def default(self, settings: ControllerSettings) -> bool:
        return settings.database_default

    def desired(self, ns: NamespaceView, settings: ControllerSettings) -> tuple[list[dict[str, Any]], list[Event]]:
        target, warning = _database_target(ns, settings)
        return database_objects(ns.name, settings, target_time=target), [warning] if warning else []

    def ready(self, obj: Any) -> bool:
        return database_ready(obj)


ADDON = Database()

"""The bucket add-on: an S3 bucket per preview, made by ACK's s3-controller (a `Bucket`), emptied
before deletion by the BucketJanitor (controller/buckets.py)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from controller import kinds
from controller.addons.base import Provisioned, conditions
from controller.settings import ControllerSettings
from controller.times import Event
from controller.views import NamespaceView
from foundation import contract

BUCKET_OBJECT_NAME = "preview-bucket"
EMPTY_BUCKET_FINALIZER = contract.PREFIX + "empty-bucket"


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


def bucket(namespace: str, uid: str, settings: ControllerSettings, *, retain: bool = False) -> dict[str, Any]:
    """The ACK Bucket; `retain` (the namespace opted out) keeps both the bucket and its data."""
    policy = "retain" if retain else settings.bucket_deletion_policy
    metadata: dict[str, Any] = {
        "name": BUCKET_OBJECT_NAME,
        "namespace": namespace,
        "labels": {contract.LABEL_MANAGED: contract.MANAGER},
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


def bucket_ready(obj: Any) -> bool:
    conds = conditions(obj)
    return conds.get("ACK.ResourceSynced") == "True" or conds.get("Ready") == "True"


class Bucket(Provisioned):
    name = "bucket"
    annotation = contract.ANN_BUCKET
    observed = kinds.BUCKET
    watch_name = "ack-buckets"
    creates = (kinds.BUCKET,)
    ready_word = "Synced"

    def enabled(self, settings: ControllerSettings) -> bool:
        return settings.bucket_enabled

    def default(self, settings: ControllerSettings) -> bool:
        return settings.bucket_default

    def desired(self, ns: NamespaceView, settings: ControllerSettings) -> tuple[list[dict[str, Any]], list[Event]]:
        retain = ns.annotations.get(contract.ANN_RETAIN_BUCKET, "").lower() == "true"
        return [bucket(ns.name, ns.uid, settings, retain=retain)], []

    def ready(self, obj: Any) -> bool:
        return bucket_ready(obj)

    def extensions(self, settings: ControllerSettings, kube: Any, controller: Any, fence: Any) -> list[Any]:
        from controller.buckets import BucketJanitor
        from foundation.trust import botocore_bundle

        return [BucketJanitor(kube, controller.cache, endpoint_url=settings.s3_endpoint_url,
                              region=settings.s3_region, ca_bundle=botocore_bundle(settings.extra_ca_certs),
                              dry_run=settings.dry_run,
                              announce=controller.announce, fence=fence,
                              upstream=controller.metrics.upstream)]


ADDON = Bucket()

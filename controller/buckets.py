"""Empty a preview's S3 bucket before ACK deletes it.

ACK does not empty buckets, and S3 refuses to delete a non-empty one: the
Bucket object (and with it the namespace) would stay Terminating forever.  So
every Bucket the controller creates carries the finalizer below; when its
deletion starts, the janitor deletes every object version and delete marker
through the S3 API, then removes the finalizer and lets ACK delete the bucket.
A namespace annotated `preview-broker.io/retain-bucket: "true"` gets a Bucket
with deletion policy `retain` and no finalizer: the data stays.

Credentials come from the usual AWS chain (IRSA in a cluster); S3_ENDPOINT_URL
points elsewhere (MinIO, a test server).

With DRY_RUN nothing is deleted: the janitor logs what it would empty (and
tries a DryRun Event, which a terminating namespace usually refuses), and the
finalizer stays (the Bucket, and its namespace, wait until DRY_RUN is off).  Every delete batch first asks the leader-election
fence: a replica that lost the lease deletes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from controller import kinds
from controller.addons.bucket import ADDON, EMPTY_BUCKET_FINALIZER
from controller.times import Event
from foundation.upstream import UpstreamMetrics
from kube.client import ApiError, KubeError
from kube.queue import WorkQueue, drain_forever

log = logging.getLogger("preview_broker.buckets")

FINALIZER = EMPTY_BUCKET_FINALIZER
BATCH = 1000  # S3 DeleteObjects accepts at most 1000 keys


class S3Error(Exception):
    pass


async def empty_bucket(s3: Any, bucket: str, fence: Callable[[], float] | None = None) -> int:
    """Delete every version and delete marker; returns how many were deleted. A missing bucket is empty.

    Each round lists from the start instead of following pagination markers:
    deleting while paginating shifts what the next page would have been, and a
    skipped version would make S3 refuse to delete the bucket.  The loop ends
    only on a listing that comes back empty.
    """
    deleted = 0
    try:
        while True:
            page = await s3.list_object_versions(Bucket=bucket, MaxKeys=BATCH)
            keys = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in (page.get("Versions") or []) + (page.get("DeleteMarkers") or [])
            ][:BATCH]
            if not keys:
                return deleted
            if fence is not None:
                fence()  # raises NotLeader
            resp = await s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise S3Error(f"{bucket}: {len(resp['Errors'])} objects not deleted ({first.get('Code')})")
            deleted += len(keys)
    except S3Error:
        raise
    except Exception as exc:  # botocore's ClientError and friends, translated at the boundary
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return deleted
        raise S3Error(f"{bucket}: {type(exc).__name__}: {exc}") from None


class BucketJanitor:
    def __init__(
        self,
        kube: Any,
        cache: Any,
        *,
        endpoint_url: str = "",
        region: str = "",
        ca_bundle: str | None = None,
        workers: int = 2,
        dry_run: bool = False,
        announce: Callable[[str, Event], Awaitable[None]] | None = None,
        fence: Callable[[], float] | None = None,
        upstream: UpstreamMetrics | None = None,
    ) -> None:
        self.kube = kube
        self.cache = cache
        self.upstream = upstream  # times the S3 calls
        self.endpoint_url = endpoint_url or None
        self.region = region or None
        self.ca_bundle = ca_bundle  # None: botocore's own CAs
        self.workers = workers
        self.dry_run = dry_run
        self.announce = announce
        self.fence = fence
        self._announced: set[str] = set()  # dry run: say it once per bucket
        self.queue = WorkQueue(retry_base=2.0, retry_cap=120.0)

    def notify(self, namespace: str) -> None:
        bucket = self.cache.observed[ADDON.name].get(namespace)
        meta = (bucket or {}).get("metadata") or {}
        if meta.get("deletionTimestamp") and FINALIZER in (meta.get("finalizers") or []):
            self.queue.add(namespace)

    async def run(self) -> None:
        from aiobotocore.session import get_session

        session = get_session()
        async with session.create_client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                                         verify=self.ca_bundle) as s3:
            if self.upstream is not None:
                self.upstream.instrument_botocore(s3)
            await asyncio.gather(*(
                drain_forever(self.queue, lambda ns: self.tear_down(s3, ns), job="bucket_teardown",
                              expected=(S3Error, KubeError), log=log)
                for _ in range(self.workers)
            ))

    async def tear_down(self, s3: Any, namespace: str) -> None:
        obj = self.cache.observed[ADDON.name].get(namespace)
        meta = (obj or {}).get("metadata") or {}
        if not meta.get("deletionTimestamp") or FINALIZER not in (meta.get("finalizers") or []):
            return
        name = obj["spec"]["name"]
        if self.dry_run:
            if name not in self._announced:
                self._announced.add(name)
                log.info("dry_run_would_empty_bucket", extra={"namespace": namespace, "bucket": name})
                if self.announce is not None:
                    await self.announce(namespace, Event(
                        "Normal", "DryRun", f"would empty and delete bucket {name} (DRY_RUN is on: kept)"))
            return
        count = await empty_bucket(s3, name, self.fence)
        log.info("bucket_emptied", extra={"namespace": namespace, "bucket": name, "deleted": count})
        remaining = [f for f in meta["finalizers"] if f != FINALIZER]
        path = kinds.object_path(obj)
        try:
            # resourceVersion makes this a compare-and-swap: another finalizer change is never lost.
            await self.kube.merge_patch(path, {"metadata": {"finalizers": remaining,
                                                            "resourceVersion": meta["resourceVersion"]}})
        except ApiError as exc:
            if exc.not_found:
                return
            if exc.conflict:
                self.queue.add_after(namespace, 0.5)
                return
            raise

"""Leader election on a coordination.k8s.io/v1 Lease (the client-go algorithm, simplified).

A replica takes the lease when it is free or when its holder has not renewed it
for a whole lease duration *as observed on this replica's own clock* (renewTime
written by another machine is not compared with our clock: clocks drift).
Writes use the object's resourceVersion, so two candidates cannot both win.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from controller.kube import ApiError, Kube, KubeError

log = logging.getLogger("preview_broker.leader")


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(self, kube: Kube, namespace: str, name: str, identity: str, duration: int = 15) -> None:
        self.kube = kube
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity
        self.duration = duration
        self.retry = max(1.0, duration / 5)
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self.is_leader = False

    async def acquire(self) -> None:
        """Return once this replica holds the lease."""
        while not await self._try():
            await asyncio.sleep(self.retry)
        self.is_leader = True
        log.info("leader_acquired", extra={"identity": self.identity, "lease": self.name})

    async def hold(self) -> None:
        """Renew until renewal fails for a whole lease duration; then return (leadership lost)."""
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self.duration / 3)
            try:
                if await self._try():
                    last_ok = time.monotonic()
                    continue
                log.error("leader_lost", extra={"identity": self.identity, "why": "lease taken"})
                break
            except KubeError as exc:
                log.warning("lease_renew_failed", extra={"error": str(exc)[:200]})
            if time.monotonic() - last_ok > self.duration:
                log.error("leader_lost", extra={"identity": self.identity, "why": "could not renew"})
                break
        self.is_leader = False

    async def release(self) -> None:
        """Give the lease up on a clean shutdown so the next leader need not wait."""
        try:
            lease = await self.kube.get(f"{self.path}/{self.name}")
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.kube.replace(f"{self.path}/{self.name}", lease)
        except KubeError:
            pass

    async def _try(self) -> bool:
        now = _micro_time()
        try:
            lease = await self.kube.get(f"{self.path}/{self.name}")
        except ApiError as exc:
            if not exc.not_found:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name},
                "spec": self._spec(now, now, 0),
            }
            try:
                await self.kube.create(self.path, body)
                return True
            except ApiError as exc2:
                if exc2.conflict:
                    return False
                raise
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        seen = (holder, spec.get("renewTime") or "")
        if seen != self._observed:
            self._observed, self._observed_at = seen, time.monotonic()
        duration = spec.get("leaseDurationSeconds") or self.duration
        expired = time.monotonic() - self._observed_at > duration
        if holder and holder != self.identity and not expired:
            return False
        transitions = spec.get("leaseTransitions") or 0
        if holder == self.identity:
            lease["spec"] = self._spec(spec.get("acquireTime") or now, now, transitions)
        else:
            lease["spec"] = self._spec(now, now, transitions + 1)
        try:
            await self.kube.replace(f"{self.path}/{self.name}", lease)  # carries resourceVersion
        except ApiError as exc:
            if exc.conflict:
                return False
            raise
        return True

    def _spec(self, acquire: str, renew: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.duration,
            "acquireTime": acquire,
            "renewTime": renew,
            "leaseTransitions": transitions,
        }

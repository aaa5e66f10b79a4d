"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's timing rules.

* A follower takes the Lease when it is free, or when its holder has not renewed
  it for `lease_duration` seconds *as observed on the follower's own monotonic
  clock* (renewTime was written by another machine's clock, which may drift).
* The leader renews every `retry_period`.  It may act only until `renew_deadline`
  seconds after the *start* of its last successful renewal: the apiserver may have
  applied that renewal at any moment after the request left, and followers count
  from when they saw it.  `renew_deadline < lease_duration` leaves a margin for
  clock rates and for a write already on the wire.
* Every write of the controller goes through a fenced client (Kube.fenced) that
  asks `remaining()` first; so a leader paused (SIGSTOP, a long GC, a frozen VM)
  past its deadline writes nothing when it wakes, even before its renew loop has
  noticed.  The one gap left: a process paused between that check and the write
  itself; the margin above is for that.
* Errors while acquiring (a missing namespace, RBAC, 5xx, timeouts) are logged
  and retried with capped exponential backoff; they never count as acquired.
* Writes carry the Lease's resourceVersion: two candidates cannot both win.

kubernetes-asyncio ships a `leaderelection` module; it is not used because it
times the renew deadline with the wall clock, lets a hanging request outlive
the deadline, ends on the first non-API error (a timeout, a reset connection),
retries errors without backoff and offers no way to fence writes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from kube.client import ApiError, Kube, KubeError, NotLeader

log = logging.getLogger("preview_broker.leader")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _jitter(seconds: float) -> float:
    return seconds * (1 + 0.2 * random.random())  # client-go's JitterFactor 1.2


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not retry_period * 1.2 < renew_deadline < lease_duration:
            raise ValueError("need lease_duration > renew_deadline > 1.2 * retry_period")
        self.kube = kube
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.sleep = sleep
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._valid_until = float("-inf")  # monotonic; this replica may write before it

    # --- what the rest of the controller asks ------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.clock() < self._valid_until

    def remaining(self) -> float:
        """Seconds this replica may still write; NotLeader when it may not (the write fence)."""
        left = self._valid_until - self.clock()
        if left <= 0:
            raise NotLeader(f"{self.identity} does not hold the lease {self.name}")
        return left

    # --- the loops ----------------------------------------------------------------------------
    async def acquire(self) -> None:
        """Return once this replica holds the lease; retry errors with backoff, forever."""
        backoff = self.retry_period
        while True:
            started = self.clock()
            try:
                async with asyncio.timeout(self.renew_deadline):
                    won = await self._try()
            except (KubeError, TimeoutError) as exc:
                delay = _jitter(backoff)
                backoff = min(backoff * 2, self.lease_duration)
                log.warning("lease_acquire_failed", extra={
                    "lease": self.name, "error": _describe(exc), "retry_in": round(delay, 2)})
                await self.sleep(delay)
                continue
            if won:
                self._valid_until = started + self.renew_deadline
                log.info("leader_acquired", extra={"identity": self.identity, "lease": self.name})
                return
            backoff = self.retry_period  # held by a live leader: that is no error
            await self.sleep(_jitter(self.retry_period))

    async def hold(self) -> str:
        """Renew until the renew deadline passes without a renewal, or another replica holds the
        lease; then return why.  From then on remaining() refuses every write."""
        while True:
            # Wake at the deadline at the latest: a failed renewal just before it must not keep the
            # leader "holding" for another retry period (remaining() already refuses writes then).
            await self.sleep(min(self.retry_period, max(self._valid_until - self.clock(), 0.0)))
            started = self.clock()
            left = self._valid_until - started
            if left <= 0:
                why = "renew deadline passed"
                break
            try:
                async with asyncio.timeout(left):  # a hanging request must not outlive the deadline
                    renewed = await self._try()
            except (KubeError, TimeoutError) as exc:
                left = self._valid_until - self.clock()
                log.warning("lease_renew_failed", extra={"lease": self.name, "error": _describe(exc),
                                                          "left_s": round(max(left, 0), 2)})
                if left <= 0:
                    why = "renew deadline passed"
                    break
                continue
            if renewed:
                self._valid_until = started + self.renew_deadline
                continue
            holder = self._observed[0] if self._observed else ""
            if holder and holder != self.identity:
                why = f"lease held by {holder}"
                break
            # Still ours but changed under us (a 409): read it again next round, until the deadline.
            log.warning("lease_renew_failed", extra={"lease": self.name, "error": "conflict"})
        self._valid_until = float("-inf")
        log.error("leader_lost", extra={"identity": self.identity, "lease": self.name, "why": why})
        return why

    async def release(self) -> None:
        """Give the lease up on a clean shutdown so the next leader need not wait; only while still
        valid (after that the lease may be someone else's)."""
        try:
            left = self.remaining()
            async with asyncio.timeout(left):
                lease = await self.kube.get(f"{self.path}/{self.name}")
                if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                    lease["spec"]["holderIdentity"] = ""
                    lease["spec"]["leaseDurationSeconds"] = 1
                    await self.kube.replace(f"{self.path}/{self.name}", lease)
                    log.info("leader_released", extra={"identity": self.identity, "lease": self.name})
        except (KubeError, TimeoutError):
            pass
        self._valid_until = float("-inf")

    # --- one attempt ---------------------------------------------------------------------------
    async def _try(self) -> bool:
        """Read the lease and take or renew it if this replica may; False when another holds it."""
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
            except ApiError as exc2:
                if exc2.conflict:
                    return False  # another candidate created it first
                raise
            return True
        spec: dict[str, Any] = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        seen = (holder, spec.get("renewTime") or "")
        if seen != self._observed:
            self._observed, self._observed_at = seen, self.clock()
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        expired = self.clock() - self._observed_at > duration
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
                return False  # changed since we read it: someone else renewed or took it
            raise
        self._observed = (self.identity, now)
        return True

    def _spec(self, acquire: str, renew: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": acquire,
            "renewTime": renew,
            "leaseTransitions": transitions,
        }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc)[:300]

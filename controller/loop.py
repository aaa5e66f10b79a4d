"""The generic controller loop: watches feed caches, a queue feeds reconciles, side jobs run beside.

Nothing here knows what a preview is.  A subclass says which watches to run
(`_watchers`), what the keys to resync are (`_resync_keys`) and what reconciling
one key means (`reconcile`); the loop runs the watches, waits for their first
lists, then drains the queue with a few workers, retrying failures with
back-off.  Leader gating: every write goes through the lease's fence
(kube/leader.py, wired by controller/main.py); a reconcile stopped by it
(NotLeader) is not an error of its key.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from controller.metrics import ControllerMetrics
from kube.client import Kube, KubeError, NotLeader, slim
from kube.queue import WorkQueue
from kube.watch import Watcher

log = logging.getLogger("preview_broker.controller")


@dataclass(frozen=True, slots=True)
class Result:
    """What a reconcile asks of the queue: run this key again after `requeue_after` seconds."""

    requeue_after: float | None = None


class Loop:
    def __init__(
        self,
        kube: Kube,
        *,
        metrics: ControllerMetrics,
        resync_period: float,
        workers: int = 4,
        extensions: list[Any] | None = None,
        freeze_after_first_pass: bool = False,
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.resync_period = resync_period
        self.workers = workers
        self.queue = WorkQueue()
        self.watchers: list[Watcher] = []
        # Side jobs with their own queues (GitHub statuses, bucket emptying): told after every
        # reconcile, never awaited by it, so a slow GitHub or S3 never delays the allowlist.
        self.extensions = list(extensions or [])
        self.freeze_after_first_pass = freeze_after_first_pass

    # --- what a subclass says --------------------------------------------------------------
    async def _discover(self) -> None:
        """Look up what the cluster serves before the watches are chosen."""

    def _watchers(self) -> list[Watcher]:
        raise NotImplementedError

    def _synced_extra(self) -> dict[str, Any]:
        return {}

    def _resync_keys(self) -> Iterable[str]:
        raise NotImplementedError

    async def reconcile(self, key: str) -> Result:
        raise NotImplementedError

    # --- watch helpers -------------------------------------------------------------------------
    def watcher(self, path: str, name: str, sync, event, selector: str | None = None, transform=slim) -> Watcher:
        restart = self.metrics.watch_restarts
        return Watcher(
            self.kube, path, name=name, on_sync=sync, on_event=event, label_selector=selector,
            on_restart=lambda reason, n=name: restart.labels(n, reason).inc(), transform=transform,
        )

    def keyed_sync(self, store: dict[str, dict[str, Any]], key: Callable[[dict[str, Any]], str]):
        """List and event handlers keeping `store` (key -> object) and enqueueing the keys touched."""
        def sync(items: list[dict[str, Any]]) -> None:
            fresh = {key(o): o for o in items}
            touched = set(fresh) | set(store)
            store.clear()
            store.update(fresh)
            for k in touched:
                self.queue.add(k, bulk=True)

        def on_event(event: str, obj: dict[str, Any]) -> None:
            k = key(obj)
            if event == "DELETED":
                store.pop(k, None)
            else:
                store[k] = obj
            self.queue.add(k)

        return sync, on_event

    # --- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        await self._discover()
        self.watchers = self._watchers()
        tasks = [asyncio.create_task(w.run(), name=f"watch-{w.name}") for w in self.watchers]
        try:
            await asyncio.gather(*(w.synced.wait() for w in self.watchers))
            log.info("caches_synced", extra=self._synced_extra())
            tasks += [asyncio.create_task(self._worker(), name=f"worker-{i}") for i in range(self.workers)]
            if self.freeze_after_first_pass:
                tasks.append(asyncio.create_task(self._freeze_after_first_pass(), name="freeze"))
            tasks.append(asyncio.create_task(self._resync(), name="resync"))
            tasks.append(asyncio.create_task(self._sample_queue(), name="queue-gauges"))
            tasks += [asyncio.create_task(self._supervise(ext), name=type(ext).__name__) for ext in self.extensions]
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _freeze_after_first_pass(self) -> None:
        """Once the first pass is done, exempt what the caches hold from cyclic garbage collection.

        With 10,000 previews the caches are a few hundred thousand objects that live as long
        as the process; every full collection scanned them all (tens of milliseconds with the
        event loop stopped).  Frozen objects are still freed by reference counting when
        replaced.  Process-wide, so only the controller's own entry point asks for it.
        """
        while not self.queue.idle():
            await asyncio.sleep(0.5)
        gc.collect()
        gc.freeze()
        log.info("caches_frozen", extra={"objects": gc.get_freeze_count()})
        await asyncio.Event().wait()  # keep the task alive, like its siblings

    async def _supervise(self, ext: Any) -> None:
        """Keep a side job running; its failure must not stop the allowlist."""
        while True:
            try:
                await ext.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("extension_failed", extra={"extension": type(ext).__name__})
                await asyncio.sleep(10)

    @property
    def synced(self) -> bool:
        return bool(self.watchers) and all(w.synced.is_set() for w in self.watchers)

    async def _sample_queue(self) -> None:
        while True:
            self.metrics.queue_depth.set(len(self.queue))
            self.metrics.queue_oldest.set(self.queue.oldest_wait())
            self.metrics.queue_delayed.set(self.queue.delayed())
            await asyncio.sleep(1.0)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            for name in self._resync_keys():
                self.queue.add(name, bulk=True)

    async def _worker(self) -> None:
        while True:
            name = await self.queue.get()
            started = time.perf_counter()
            try:
                result = await self.reconcile(name)
            except NotLeader as exc:
                # The lease is gone or going; main stops everything. Not an error of this key.
                log.info("reconcile_stopped", extra={"namespace": name, "why": str(exc)})
            except KubeError as exc:
                self.metrics.reconcile_errors.inc()
                delay = self.queue.retry(name)
                log.warning("reconcile_failed", extra={"namespace": name, "error": str(exc)[:300],
                                                       "attempt": self.queue.failures(name), "retry_in": delay})
            except Exception:  # a bad object must never take the controller down
                self.metrics.reconcile_errors.inc()
                delay = self.queue.retry(name)
                log.exception("reconcile_crashed", extra={"namespace": name, "retry_in": delay})
            else:
                self.queue.forget(name)
                if result.requeue_after is not None:
                    # A hair late rather than early: at the exact instant the old state still holds.
                    self.queue.add_after(name, result.requeue_after + 0.05)
            finally:
                self.metrics.reconcile_seconds.observe(time.perf_counter() - started)
                self.queue.done(name)
                for ext in self.extensions:
                    ext.notify(name)

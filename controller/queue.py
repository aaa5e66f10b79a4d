"""A de-duplicating work queue with delayed re-adds (what client-go calls a rate-limited queue).

A key is never processed by two workers at once, and adding a key that is
already waiting is a no-op: bursts of events for one namespace collapse into
one reconcile.

Two lanes: keys added because something changed are served before keys added
in bulk (a full list after a start or a 410, the periodic resync).  With 10,000
previews a bulk pass takes seconds; a namespace created meanwhile must not wait
behind all of it for its host to go live.  A key waiting in the bulk lane that
changes moves to the front lane.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable


class WorkQueue:
    def __init__(self) -> None:
        self._urgent: deque[str] = deque()
        self._bulk: deque[str] = deque()
        self._waiting: dict[str, bool] = {}  # key -> queued in the bulk lane
        self._ready = asyncio.Event()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def add(self, key: str, *, bulk: bool = False) -> None:
        if key in self._active:
            self._dirty.add(key)  # re-run once the current run finishes
            return
        queued_in_bulk = self._waiting.get(key)
        if queued_in_bulk is None:
            self._waiting[key] = bulk
            (self._bulk if bulk else self._urgent).append(key)
        elif queued_in_bulk and not bulk:
            self._waiting[key] = False  # promoted; its bulk entry is skipped when reached
            self._urgent.append(key)
        self._ready.set()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        old = self._timers.get(key)
        when = loop.time() + delay
        if old is not None and old.when() <= when:
            return
        if old is not None:
            old.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> str:
        while True:
            while self._urgent or self._bulk:
                from_bulk = not self._urgent
                key = (self._bulk if from_bulk else self._urgent).popleft()
                lane = self._waiting.get(key)
                if lane is None or lane != from_bulk:
                    continue  # a stale entry: already taken, or promoted to the other lane
                del self._waiting[key]
                self._active.add(key)
                return key
            self._ready.clear()
            await self._ready.wait()

    def done(self, key: str) -> None:
        self._active.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def __len__(self) -> int:
        return len(self._waiting)

    def idle(self) -> bool:
        return not self._waiting and not self._active


async def drain_forever(
    queue: WorkQueue,
    handle: Callable[[str], Awaitable[None]],
    *,
    job: str,
    expected: tuple[type[Exception], ...],
    retry_after: float,
    log: logging.Logger,
) -> None:
    """A side-job worker: take a key, handle it, retry later on failure; never stop."""
    while True:
        key = await queue.get()
        try:
            await handle(key)
        except expected as exc:
            log.warning(f"{job}_failed", extra={"key": key, "error": str(exc)[:300]})
            queue.add_after(key, retry_after)
        except Exception:  # a bug in one key's handling must not stop the others
            log.exception(f"{job}_crashed", extra={"key": key})
            queue.add_after(key, retry_after * 3)
        finally:
            queue.done(key)

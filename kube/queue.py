"""A de-duplicating work queue with delayed re-adds (what client-go calls a rate-limited queue).

A key is never processed by two workers at once, and adding a key that is
already waiting is a no-op: bursts of events for one namespace collapse into
one reconcile.

Two lanes: keys added because something changed are served before keys added
in bulk (a full list after a start or a 410, the periodic resync).  With 10,000
previews a bulk pass takes seconds; a namespace created meanwhile must not wait
behind all of it for its host to go live.  A key waiting in the bulk lane that
changes moves to the front lane.

Failures back off per key (`retry`): base * 2^failures, capped, reset by `forget`
once the key succeeds, so one broken preview retries slowly while the others
are not held up at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable


class WorkQueue:
    def __init__(self, *, retry_base: float = 0.5, retry_cap: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._urgent: deque[str] = deque()
        self._bulk: deque[str] = deque()
        self._waiting: dict[str, bool] = {}  # key -> queued in the bulk lane
        # key -> when it started waiting; insertion order, so the first entry is the oldest
        self._since: dict[str, float] = {}
        self._ready = asyncio.Event()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._failures: dict[str, int] = {}
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self._clock = clock

    def add(self, key: str, *, bulk: bool = False) -> None:
        if key in self._active:
            self._dirty.add(key)  # re-run once the current run finishes
            return
        queued_in_bulk = self._waiting.get(key)
        if queued_in_bulk is None:
            self._waiting[key] = bulk
            self._since[key] = self._clock()
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

    def retry(self, key: str) -> float:
        """Add `key` again after its next backoff delay (it failed); returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self.retry_cap, self.retry_base * 2 ** min(failures, 32))
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """`key` succeeded: its next failure starts the backoff from the beginning."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        while True:
            while self._urgent or self._bulk:
                from_bulk = not self._urgent
                key = (self._bulk if from_bulk else self._urgent).popleft()
                lane = self._waiting.get(key)
                if lane is None or lane != from_bulk:
                    continue  # a stale entry: already taken, or promoted to the other lane
                del self._waiting[key]
                del self._since[key]
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

    def oldest_wait(self) -> float:
        """Seconds the longest-waiting key has waited for a worker (0 when none waits)."""
        first = next(iter(self._since.values()), None)
        return 0.0 if first is None else self._clock() - first

    def delayed(self) -> int:
        """Keys waiting for a timer: requeues and retries after failures."""
        return len(self._timers)


async def drain_forever(
    queue: WorkQueue,
    handle: Callable[[str], Awaitable[None]],
    *,
    job: str,
    expected: tuple[type[Exception], ...],
    log: logging.Logger,
) -> None:
    """A side-job worker: take a key, handle it, retry it with backoff on failure; never stop."""
    while True:
        key = await queue.get()
        try:
            await handle(key)
        except expected as exc:
            delay = queue.retry(key)
            log.warning(f"{job}_failed", extra={"key": key, "error": str(exc)[:300], "retry_in": delay})
        except Exception:  # a bug in one key's handling must not stop the others
            delay = queue.retry(key)
            log.exception(f"{job}_crashed", extra={"key": key, "retry_in": delay})
        else:
            queue.forget(key)
        finally:
            queue.done(key)

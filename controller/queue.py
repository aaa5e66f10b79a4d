"""A de-duplicating work queue with delayed re-adds (what client-go calls a rate-limited queue).

A key is never processed by two workers at once, and adding a key that is
already waiting is a no-op: bursts of events for one namespace collapse into
one reconcile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


class WorkQueue:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._waiting: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def add(self, key: str) -> None:
        if key in self._active:
            self._dirty.add(key)  # re-run once the current run finishes
        elif key not in self._waiting:
            self._waiting.add(key)
            self._queue.put_nowait(key)

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
        key = await self._queue.get()
        self._waiting.discard(key)
        self._active.add(key)
        return key

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

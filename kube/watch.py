"""A list-then-watch loop that survives what real apiservers do.

* 410 Gone (the resourceVersion was compacted away): list again from scratch.
* The stream ends (server timeout, apiserver restart): watch again from the last
  resourceVersion; if the apiserver is down, back off and retry.
* A silent stall (a half-open TCP connection): no line for `inactivity` seconds
  -> drop the connection and watch again.  Bookmarks keep a healthy stream talking.
* API errors back off exponentially (capped), never crash the process.

Health: `failing_for()` says how long the watch has been failing without a single
success in between (a list, an open stream, a line); `stopped` that its loop ended.
/healthz reads both (controller/health.py).

`on_sync(items)` gets the full list after every (re)list, so caches can drop what
disappeared while nobody was watching; `on_event(type, item)` gets each change.
With `transform`, items are what it makes of each object, applied as every page
and event arrives: at 10,000 objects, holding whole API objects (managedFields
and all) until the last page came in set the process's peak memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from kube.client import ApiError, Kube, KubeError

log = logging.getLogger("preview_broker.watch")

SyncHandler = Callable[[list[Any]], Awaitable[None] | None]
EventHandler = Callable[[str, Any], Awaitable[None] | None]


class Backoff:
    def __init__(self, base: float = 0.2, cap: float = 10.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return delay * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self.attempt = 0


class _Relist(Exception):
    pass


async def _maybe_await(value: Awaitable[None] | None) -> None:
    if value is not None:
        await value


class Watcher:
    def __init__(
        self,
        kube: Kube,
        path: str,
        *,
        name: str,
        on_sync: SyncHandler,
        on_event: EventHandler,
        label_selector: str | None = None,
        page_size: int = 500,
        watch_timeout: int = 300,
        inactivity: float = 90.0,
        on_restart: Callable[[str], None] | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.kube = kube
        self.path = path
        self.name = name
        self.on_sync = on_sync
        self.on_event = on_event
        self.label_selector = label_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.inactivity = inactivity
        self.on_restart = on_restart or (lambda reason: None)
        self.transform = transform or (lambda obj: obj)
        self.synced = asyncio.Event()
        self.resource_version = ""
        self.stopped = False
        self._failing_since: float | None = None

    def failing_for(self, now: float | None = None) -> float:
        """Seconds since the first failure after the last success; 0 while healthy."""
        if self._failing_since is None:
            return 0.0
        return (time.monotonic() if now is None else now) - self._failing_since

    def _ok(self) -> None:
        self._failing_since = None

    def _failed(self) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.stopped = True

    async def _run(self) -> None:
        backoff = Backoff()
        need_list = True
        while True:
            try:
                if need_list:
                    await self._list()
                    need_list = False
                    self.synced.set()
                    self._ok()
                await self._watch()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except _Relist:
                log.info("watch_relist", extra={"watch": self.name, "reason": "410 Gone"})
                self.on_restart("gone")
                need_list = True
            except (KubeError, aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                self._failed()
                delay = backoff.next()
                log.warning("watch_error", extra={"watch": self.name, "error": str(exc)[:300], "retry_in": round(delay, 2)})
                if isinstance(exc, ApiError) and exc.gone:  # "too old resource version" on the watch request
                    self.on_restart("gone")
                    need_list = True
                else:
                    self.on_restart("error")
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        items: list[Any] = []
        cont: str | None = None
        while True:
            page = await self.kube.get(
                self.path, labelSelector=self.label_selector, limit=self.page_size, **({"continue": cont} if cont else {})
            )
            items += map(self.transform, page.get("items") or [])
            meta = page.get("metadata") or {}
            del page  # let this page's objects go before the next one arrives
            cont = meta.get("continue")
            if not cont:
                self.resource_version = meta.get("resourceVersion", "")
                break
        await _maybe_await(self.on_sync(items))

    async def _watch(self) -> None:
        query = {
            "watch": "1",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
            "labelSelector": self.label_selector,
        }
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=self.inactivity)
        resp = await self.kube.open("GET", self.path, query=query, timeout=timeout)
        self._ok()
        try:
            while True:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancellation that
                # lands in the same loop turn as the line, and the watch then outlived shutdown.
                async with asyncio.timeout(self.inactivity):
                    line = await resp.content.readline()
                if not line:
                    return  # stream ended normally; watch again from resource_version
                if not line.strip():
                    continue
                event = json.loads(line)
                etype, obj = event.get("type"), event.get("object") or {}
                if etype == "ERROR":
                    if obj.get("code") == 410:
                        raise _Relist()
                    raise ApiError(obj.get("code", 0), obj.get("reason", ""), obj.get("message", ""))
                rv = (obj.get("metadata") or {}).get("resourceVersion")
                if rv:
                    self.resource_version = rv
                if etype == "BOOKMARK":
                    continue
                try:
                    await _maybe_await(self.on_event(etype, self.transform(obj)))
                except Exception:  # one bad object must not stop the watch
                    log.exception("watch_handler_failed", extra={"watch": self.name})
        except asyncio.TimeoutError:
            # Not counted as a failure: reconnecting is the cure, and its success or failure counts.
            log.info("watch_stalled", extra={"watch": self.name, "after_s": self.inactivity})
            self.on_restart("stall")
        finally:
            resp.close()

"""ALLOWLIST_SOURCE=kubernetes: a read-only watch of PreviewEnvironment objects.

The controller publishes each preview's live hosts in `status.allowedHosts` and
empties it first when the preview ends.  The broker keeps a host -> preview map
in memory (O(1) lookups) and is ready once the first list has arrived.  As a
second line of defence it also drops the hosts of any object that is being
deleted or is in a non-live phase, whatever its status still says.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from foundation.contract import NOT_LIVE, PATH
from foundation.hosts import InvalidHost, normalize_host

log = logging.getLogger("preview_broker.allowlist")



def live_hosts(obj: dict[str, Any]) -> frozenset[str]:
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") in NOT_LIVE:
        return frozenset()
    out = set()
    for raw in status.get("allowedHosts") or []:
        try:
            out.add(normalize_host(str(raw)))
        except InvalidHost:
            continue
    return frozenset(out)


def entry(obj: dict[str, Any]) -> tuple[str, frozenset[str]]:
    """What the broker keeps of a PreviewEnvironment: its name and live hosts, nothing else."""
    return str((obj.get("metadata") or {}).get("name") or ""), live_hosts(obj)


class HostIndex:
    """host -> owning preview, rebuilt on sync and patched on every event."""

    def __init__(self) -> None:
        self._by_preview: dict[str, frozenset[str]] = {}
        self._owner: dict[str, str] = {}

    def __contains__(self, host: object) -> bool:
        return host in self._owner

    def __len__(self) -> int:
        return len(self._owner)

    def hosts(self) -> frozenset[str]:
        return frozenset(self._owner)

    def replace_all(self, entries: list[tuple[str, frozenset[str]]]) -> None:
        by_preview = {name: hosts for name, hosts in entries if name and hosts}
        owner = {h: name for name, hosts in by_preview.items() for h in hosts}
        self._by_preview, self._owner = by_preview, owner  # swap at once: lookups never see a half-built map

    def apply(self, event: str, item: tuple[str, frozenset[str]]) -> None:
        name, hosts = item
        if not name:
            return
        old = self._by_preview.pop(name, frozenset())
        new = frozenset() if event == "DELETED" else hosts
        for host in old - new:
            if self._owner.get(host) == name:
                del self._owner[host]
        for host in new:
            self._owner[host] = name
        if new:
            self._by_preview[name] = new


class KubernetesAllowlist:
    def __init__(self, kube: Any = None) -> None:
        self._index = HostIndex()
        self._kube = kube
        self._own_kube = kube is None
        self._task: asyncio.Task[None] | None = None
        self._watcher: Any = None

    @property
    def ready(self) -> bool:
        return self._watcher is not None and self._watcher.synced.is_set()

    def __contains__(self, host: object) -> bool:
        return host in self._index

    def __len__(self) -> int:
        return len(self._index)

    def hosts(self) -> frozenset[str]:
        """A snapshot of the live hosts (diagnostics and tests)."""
        return self._index.hosts()

    async def start(self) -> None:
        from kube.client import Kube
        from kube.watch import Watcher

        if self._kube is None:
            self._kube = await Kube.connect()
        self._watcher = Watcher(
            self._kube,
            PATH,
            name="previewenvironments",
            on_sync=self._index.replace_all,
            on_event=self._index.apply,
            transform=entry,  # the whole object is never kept, not even while the list is paged in
        )
        self._task = asyncio.create_task(self._watcher.run(), name="allowlist-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # gather, not try/except CancelledError: a cancellation of stop() itself must still propagate.
            await asyncio.gather(self._task, return_exceptions=True)
        if self._own_kube and self._kube is not None:
            await self._kube.close()

"""Where the live preview hosts come from, behind one small interface.

The broker asks one question on every redirect: "is this exact host live right
now?"  Sources answer it from memory (O(1) set membership); only their
background task talks to the outside world.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable


@runtime_checkable
class AllowlistSource(Protocol):
    @property
    def ready(self) -> bool:
        """True once the source has a complete view (readiness probe)."""
        ...

    def __contains__(self, host: object) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StaticAllowlist:
    """A fixed set of hosts from ALLOWED_HOSTS (running without a cluster)."""

    def __init__(self, hosts: Iterable[str]) -> None:
        self._hosts = frozenset(hosts)

    @property
    def ready(self) -> bool:
        return True

    def __contains__(self, host: object) -> bool:
        return host in self._hosts

    def __len__(self) -> int:
        return len(self._hosts)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class MutableAllowlist(StaticAllowlist):
    """A static allowlist whose hosts can be changed (tests and embedding)."""

    def __init__(self, hosts: Iterable[str] = ()) -> None:
        self._set = set(hosts)

    def __contains__(self, host: object) -> bool:
        return host in self._set

    def __len__(self) -> int:
        return len(self._set)

    def add(self, host: str) -> None:
        self._set.add(host)

    def discard(self, host: str) -> None:
        self._set.discard(host)

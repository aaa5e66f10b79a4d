"""Single-use memory for login states and tickets, that no anonymous client can fill.

What makes a state or a ticket useless to anyone else is the browser binding (see
loginstate): a state needs the bind cookie of the browser that started the login, a ticket
the login cookie of the preview host it started on.  This memory only stops that same
browser from using one twice, so it may forget, but it must never refuse an honest login:

* it records a gate state only after the identity provider accepted its code, and a ticket
  only after it redeemed in its own browser: an anonymous client cannot add entries there;
* the relay guard records at callback (the app exchanges the code itself), so anyone can
  add entries to it; when full, the entry closest to expiry is forgotten, never a new one
  refused.

Per replica: another replica may not know a use, which costs nothing that the binding and
the identity provider's single-use codes do not already stop (docs/security.md).
"""

from __future__ import annotations

import heapq

from foundation.clock import Clock


class ReplayGuard:
    def __init__(self, clock: Clock, max_entries: int = 100_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._seen: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []

    def seen(self, token_id: str) -> bool:
        """True when `token_id` was recorded and has not expired yet."""
        self._evict(self._clock())
        return token_id in self._seen

    def first_use(self, token_id: str, expires_at: float) -> bool:
        """Record `token_id`; False when it was already recorded (a replay)."""
        self._evict(self._clock())
        if token_id in self._seen:
            return False
        while len(self._seen) >= self._max:  # full: forget the entry closest to expiry
            _, oldest = heapq.heappop(self._expiry)
            self._seen.pop(oldest, None)
        self._seen[token_id] = expires_at
        heapq.heappush(self._expiry, (expires_at, token_id))
        return True

    def _evict(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, token_id = heapq.heappop(self._expiry)
            self._seen.pop(token_id, None)

    def __len__(self) -> int:
        return len(self._seen)

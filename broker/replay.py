"""Single-use guard for state envelopes and login tickets.

Each token carries a random id; the first time it is redeemed the id is
remembered until the token would have expired anyway, and a second redemption
is refused.  The memory is per process: a broker replica that never saw the
first use cannot refuse the second.  That is acceptable because the state is
also bound to the browser's nonce cookie and the IdP refuses a second use of the
same authorization code; tickets live for seconds and are bound to one host.
"""

from __future__ import annotations

import heapq

from broker.clock import Clock


class ReplayGuard:
    def __init__(self, clock: Clock, max_entries: int = 200_000) -> None:
        self._clock = clock
        self._max = max_entries
        self._seen: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []

    def first_use(self, token_id: str, expires_at: float) -> bool:
        """Record `token_id`; False when it was already used (a replay)."""
        now = self._clock()
        self._evict(now)
        if token_id in self._seen:
            return False
        if len(self._seen) >= self._max:
            # Full of live ids: refusing is safer than forgetting one.
            return False
        self._seen[token_id] = expires_at
        heapq.heappush(self._expiry, (expires_at, token_id))
        return True

    def _evict(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, token_id = heapq.heappop(self._expiry)
            self._seen.pop(token_id, None)

    def __len__(self) -> int:
        return len(self._seen)

"""Log lines anyone can cause, at a bounded rate; every one still counted in metrics.

Anyone can send a preview host a forged cookie, the broker a junk `state`, or start logins
they never finish, as fast as they like.  Each is counted on every request
(`preview_broker_refused_total{endpoint,reason}`, `preview_broker_logins_started_total`),
but only the first of each kind and host in a window is logged; the rest of that window
becomes one `<message>_summary` line with the count, when the window ends.  A flood of
10,000 forged cookies costs the log pipeline two lines, not 10,000.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

MAX_KEYS = 1000  # hosts come from headers: past this many, further ones share one key
OTHER = "(other)"


class BoundedLog:
    def __init__(self, logger: logging.Logger, *, window: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS) -> None:
        self._log = logger
        self._window = window
        self._clock = clock
        self._max_keys = max_keys
        # (message, kind, host) -> [window start, lines held back in this window, level, fields of the summary]
        self._windows: dict[tuple[str, str, str], list[Any]] = {}

    def log(self, level: int, message: str, kind: str, host: str = "", **extra: Any) -> None:
        """Log `message` unless one of the same `kind` and `host` was logged within the window."""
        if not self._log.isEnabledFor(level):
            return
        now = self._clock()
        key = (message, kind, host)
        if key not in self._windows and len(self._windows) >= self._max_keys:
            self.flush(now)
            if len(self._windows) >= self._max_keys:
                key = (message, kind, OTHER)
        window = self._windows.get(key)
        if window is not None and now - window[0] < self._window:
            window[1] += 1
            return
        if window is not None:
            self._summary(key, window)
        fields = {**extra, "host": host} if host else dict(extra)
        self._windows[key] = [now, 0, level, fields]
        self._log.log(level, message, extra=fields)

    def refused(self, endpoint: str, reason: str, status: int, *, host: str = "", level: int = logging.WARNING,
                **context: Any) -> None:
        self.log(level, "refused", f"{endpoint}/{reason}", host, endpoint=endpoint, reason=reason, status=status,
                 **context)

    def flush(self, now: float | None = None) -> None:
        """Write the summaries of windows that have ended (the app runs this every window)."""
        now = self._clock() if now is None else now
        for key, window in list(self._windows.items()):
            if now - window[0] >= self._window:
                self._summary(key, window)
                del self._windows[key]

    def _summary(self, key: tuple[str, str, str], window: list[Any]) -> None:
        if window[1]:
            self._log.log(window[2], f"{key[0]}_summary",
                          extra={**window[3], "count": window[1], "seconds": self._window})

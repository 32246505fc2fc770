"""Rate-limited logging, so an outage writes one line per interval and not one per request.

Every message goes to ``logging.getLogger("authsvc.verify")``. Nothing logged here ever
contains a token: callers pass fixed text and numbers.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("authsvc.verify")


class RateLimitedLog:
    """Log each key at most once per ``interval`` seconds, counting what was held back."""

    def __init__(self, interval: float = 30.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def log(self, level: int, key: str, msg: str, *args: object) -> None:
        """Log ``msg % args`` under ``key`` unless the same key was logged recently."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            held_back = self._suppressed.pop(key, 0)
        if held_back:
            msg += " (%d similar messages suppressed)"
            args = (*args, held_back)
        logger.log(level, msg, *args)

    def warning(self, key: str, msg: str, *args: object) -> None:
        self.log(logging.WARNING, key, msg, *args)

    def error(self, key: str, msg: str, *args: object) -> None:
        self.log(logging.ERROR, key, msg, *args)

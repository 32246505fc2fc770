"""Redis fan-out: revocations applied within about a second instead of a poll interval.

Optional (``pip install authsvc[redis]``); ``redis`` is imported only when a URL is given.
The subscriber runs in its own daemon thread, reconnects with capped exponential backoff
and jitter, and after every (re)subscription wakes the poller, because messages published
while it was away are gone for good. Polling stays the source of truth either way.
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any

from ._log import RateLimitedLog
from ._revocations import BadRevocationData
from ._sync import RevocationSync

CHANNEL = "authsvc:revocations"
_MAX_BACKOFF = 30.0
#: How long one wait for a message may block, which bounds how late close() is noticed.
_READ_TIMEOUT = 0.5


class FanoutSubscriber:
    """Subscribe to ``CHANNEL`` and feed every message to ``sync.apply_hint``."""

    def __init__(self, url: str, sync: RevocationSync, stop: threading.Event, log: RateLimitedLog) -> None:
        import redis  # lazily: only resource servers that opted into fan-out need it

        self._redis = redis
        self._url = url
        self._sync = sync
        self._stop = stop
        self._log = log
        #: Set while subscribed; lets callers (and tests) know hints are flowing.
        self.subscribed = threading.Event()

    def run(self) -> None:
        """Subscribe, consume and reconnect until ``stop`` is set."""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._consume()
                backoff = 0.5
            except (self._redis.RedisError, OSError) as exc:
                self.subscribed.clear()
                self._log.warning("fanout", "revocation fan-out lost (%s); polling only", exc)
                self._stop.wait(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _consume(self) -> None:
        client = self._redis.Redis.from_url(self._url, socket_connect_timeout=2.0, health_check_interval=30)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(CHANNEL)
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=_READ_TIMEOUT)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # Only now does Redis route publications to us.
                    self.subscribed.set()
                    self._sync.wake.set()  # whatever was published while we were away is lost
                elif message["type"] == "message":
                    self._apply(message["data"])
        finally:
            self.subscribed.clear()
            pubsub.close()
            client.close()

    def _apply(self, data: Any) -> None:
        try:
            message = json.loads(data)
            if not isinstance(message, dict):
                raise BadRevocationData("not a JSON object")
            self._sync.apply_hint(message)
        except (ValueError, TypeError) as exc:
            # BadRevocationData is a ValueError. A bad hint is only a hint: the poll will tell.
            self._log.warning("fanout-message", "ignoring malformed revocation message: %s", exc)

"""Redis fan-out: revocations applied within about a second instead of a poll interval.

Optional (``pip install authsvc[redis]``); ``redis`` is imported only when a URL is given.
The subscriber runs in its own daemon thread, reconnects with capped exponential backoff
and jitter, and after every (re)subscription wakes the poller, because messages published
while it was away are gone for good. Polling stays the source of truth either way: a
message is applied only until the next poll confirms it or drops it (see _sync), so one
published by anyone else who can reach the channel cannot revoke anything for good.
"""

from __future__ import annotations

import json
import os
import random
import threading
from typing import Any

from ._log import RateLimitedLog
from ._revocations import BadRevocationData
from ._sync import RevocationSync

CHANNEL_PREFIX = "authsvc:revocations:"


def channel_for(issuer: str) -> str:
    """The issuer's own channel (the server names it the same way)."""
    return CHANNEL_PREFIX + issuer


#: Prefix of the name shown by CLIENT LIST; the pid follows, to tell processes apart.
CLIENT_NAME = "authsvc.verify"
_JITTER = random.Random()
_MIN_BACKOFF = 0.5
_MAX_BACKOFF = 30.0
#: How long one wait for a message may block, which bounds how late close() is noticed.
_READ_TIMEOUT = 0.5


class FanoutSubscriber:
    """Subscribe to the issuer's channel and feed every message to ``sync.apply_hint``."""

    def __init__(
        self, url: str, channel: str, sync: RevocationSync, stop: threading.Event, log: RateLimitedLog
    ) -> None:
        import redis  # lazily: only resource servers that opted into fan-out need it

        self._redis = redis
        # Parsed now, so a malformed URL fails TokenVerifier() instead of a thread later.
        self._client = redis.Redis.from_url(
            url, socket_connect_timeout=2.0, health_check_interval=30, client_name=f"{CLIENT_NAME}:{os.getpid()}"
        )
        self._channel = channel
        self._sync = sync
        self._stop = stop
        self._log = log
        #: Set while subscribed; lets callers (and tests) know hints are flowing.
        self.subscribed = threading.Event()
        self._was_subscribed = False

    def run(self) -> None:
        """Subscribe, consume and reconnect until ``stop`` is set."""
        backoff = _MIN_BACKOFF
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as exc:  # noqa: BLE001 - whatever broke, the thread must live on
                self._log.warning("fanout", "revocation fan-out lost (%s); polling only", exc)
            if self._was_subscribed:
                backoff = _MIN_BACKOFF  # a connection that worked for a while earns a quick retry
            self._was_subscribed = False
            self._stop.wait(backoff * _JITTER.uniform(0.5, 1.0))
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def close(self) -> None:
        """Release the Redis connection pool (after ``stop`` is set and the thread ended)."""
        self._client.close()

    def _consume(self) -> None:
        pubsub = self._client.pubsub()
        try:
            pubsub.subscribe(self._channel)
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=_READ_TIMEOUT)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # Only now does Redis route publications to us.
                    self.subscribed.set()
                    self._was_subscribed = True
                    self._sync.wake.set()  # whatever was published while we were away is lost
                elif message["type"] == "message":
                    self._apply(message["data"])
        finally:
            self.subscribed.clear()
            pubsub.close()

    def _apply(self, data: Any) -> None:
        try:
            message = json.loads(data)
            if not isinstance(message, dict):
                raise BadRevocationData("not a JSON object")
            self._sync.apply_hint(message)
        except (ValueError, TypeError) as exc:
            # BadRevocationData is a ValueError. A bad hint is only a hint: the poll will tell.
            self._log.warning("fanout-message", "ignoring malformed revocation message: %s", exc)

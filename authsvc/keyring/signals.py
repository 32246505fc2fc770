"""Redis fan-out of key-ring changes: a hint to reload now, never the ring itself.

Whoever changes the ring publishes the ring's new version on a channel per
issuer; every instance listening wakes its ring watcher at once instead of at
its next poll. A lost message, or Redis being down, only delays pick-up until
that poll (at most ``check_interval``): the ring's store stays the truth.
"""

import logging
import threading

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "authsvc:keyring:"
RETRY_SECONDS = 5.0
LISTEN_SECONDS = 0.5


def channel_for(issuer):
    """One channel per issuer, so issuers sharing a Redis never wake each other."""
    return CHANNEL_PREFIX + issuer


class RedisSignal:
    def __init__(self, url, issuer):
        import redis

        self._channel = channel_for(issuer)
        self._url = url
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._stop = threading.Event()
        self._pubsub = None
        self._thread = None

    def publish(self, version=None):
        """Tell every listening instance that the ring changed (best effort)."""
        try:
            self._redis.publish(self._channel, str(version or ""))
        except Exception as exc:  # noqa: BLE001 - a hint only; instances also poll
            log.warning("key-ring fan-out to Redis failed: %s", type(exc).__name__)

    def listen(self, wake):
        """Call ``wake()`` on every message, from a daemon thread, until close()."""
        thread = threading.Thread(target=self._listen, args=(wake,), name="authsvc-keyring-redis", daemon=True)
        self._thread = thread
        thread.start()
        return thread

    def _listen(self, wake):
        import redis

        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self._url, socket_connect_timeout=1, socket_timeout=None)
                self._pubsub = client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(self._channel)
                # A message may have been missed while not subscribed: look once now.
                wake()
                # Waits of at most LISTEN_SECONDS, so that close() is heard even when no message comes.
                while not self._stop.is_set():
                    message = self._pubsub.get_message(timeout=LISTEN_SECONDS)
                    if message and message.get("type") == "message":
                        wake()
            except Exception as exc:  # noqa: BLE001 - reconnect after a pause; polling covers the gap
                if self._stop.is_set():
                    return
                log.warning("key-ring Redis subscription lost (%s); polling until it is back", type(exc).__name__)
                self._stop.wait(RETRY_SECONDS)

    def close(self):
        """Stop listening: the thread ends within ``LISTEN_SECONDS``."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=LISTEN_SECONDS + 1)
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                pubsub.close()
            except Exception:  # noqa: BLE001, S110 - closing a dead connection may fail; nothing to do
                pass

"""Fixed-window counters for failed logins, shared by every instance.

Counters live in the shared store, or in Redis when configured. When Redis
fails the store takes over, so a limit never silently opens and a Redis outage
never blocks every login.
"""

import logging

log = logging.getLogger(__name__)


class Limiter:
    def __init__(self, store, clock, redis_url: str | None = None):
        self.store = store
        self.clock = clock
        self._redis = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.1, socket_connect_timeout=0.1)

    def hit(self, key: str, window: int) -> int:
        """Count one event for ``key`` in the current window and return the count."""
        now = self.clock()
        if self._redis is not None:
            bucket = f"authsvc:rl:{key}:{int(now // window)}"
            try:
                with self._redis.pipeline() as pipe:
                    count, _ = pipe.incr(bucket).expire(bucket, window).execute()
                return int(count)
            except Exception as exc:  # noqa: BLE001 - degrade to the shared store
                log.warning("rate-limit counter in Redis failed (%s); using the database", type(exc).__name__)
        return self.store.hit(key, window, now)

    def count(self, key: str, window: int) -> int:
        """Return the current count for ``key`` without counting."""
        now = self.clock()
        if self._redis is not None:
            try:
                value = self._redis.get(f"authsvc:rl:{key}:{int(now // window)}")
                return int(value or 0)
            except Exception as exc:  # noqa: BLE001
                log.warning("rate-limit read from Redis failed (%s); using the database", type(exc).__name__)
        return self.store.count(key, window, now)

    def reset(self, key: str) -> None:
        if self._redis is not None:
            try:
                keys = list(self._redis.scan_iter(f"authsvc:rl:{key}:*", count=100))
                if keys:
                    self._redis.delete(*keys)
            except Exception as exc:  # noqa: BLE001
                log.warning("rate-limit reset in Redis failed (%s)", type(exc).__name__)
        self.store.reset_counter(key)

"""Rate limits shared by every instance: moving windows, counted before the work they protect.

The algorithm is the ``limits`` library's moving window: at most ``amount``
accepted attempts in any ``window`` seconds, so there is no window edge to
time attacks against. ``hit`` counts and checks in one atomic step and says
whether this attempt may go ahead; a refused attempt is not recorded, so
hammering a full window never extends it.

The strategy runs on two storages:

- the shared database (``StoreStorage``), always. It is the authority.
- Redis (``ClockedRedisStorage``), when AUTHSVC_REDIS_URL is set: a second,
  independent copy.

The rule for failures: every attempt is counted in the database and then in
Redis, and it is refused when either refuses. A Redis error or timeout drops
only Redis's answer; the database saw the attempt and decides alone, so a
Redis outage neither opens a lock nor forgets a counted attempt. A database
outage raises ``StoreUnavailable`` (answered 503) before Redis is asked.

Keys are SHA-256 digests of what they limit (a normalised username, an
address): no input can form a pattern or reach another key, and ``clear``
deletes exactly one key. Redis keys are namespaced per issuer, so
deployments sharing a Redis do not share counts.

Time is the injected clock on both storages (the library's own storages read
``time.time()``), so tests move windows without sleeping.
"""

import hashlib
import logging
import math

from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import MovingWindowSupport
from limits.storage import RedisStorage
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter

from .errors import StoreUnavailable

log = logging.getLogger(__name__)

# A slow Redis costs a login at most this long; the database has decided already.
REDIS_TIMEOUT = 0.1


def limit(name: str, amount: int, window: int) -> RateLimitItemPerSecond:
    """``amount`` attempts per moving ``window`` seconds, counted under ``name``."""
    return RateLimitItemPerSecond(amount, window, namespace=name)


def digest(value: str) -> str:
    """The key of ``value`` in every storage: its SHA-256, so no value can be a pattern."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class Limiter:
    def __init__(self, store, clock, redis_url: str | None = None, *, redis_prefix: str = "authsvc:rl"):
        self.clock = clock
        self._database = MovingWindowRateLimiter(StoreStorage(store, clock))
        self._redis = None
        if redis_url:
            storage = ClockedRedisStorage(redis_url, clock, key_prefix=redis_prefix)
            self._redis = MovingWindowRateLimiter(storage)

    def hit(self, item: RateLimitItemPerSecond, value: str) -> bool:
        """Count one attempt on ``value``; False (and nothing counted) when its window is full."""
        key = digest(value)
        if not self._database.hit(item, key):
            return False
        if self._redis is None:
            return True
        try:
            return self._redis.hit(item, key)
        except StorageError as error:
            log.warning("rate limit in Redis failed (%s); the database's count decides", _reason(error))
            return True

    def retry_after(self, item: RateLimitItemPerSecond, value: str) -> int:
        """Whole seconds until ``value`` may be attempted again (0: now)."""
        key = digest(value)
        now = self.clock()
        limiters = [self._database] + ([self._redis] if self._redis else [])
        wait = None
        for limiter in limiters:
            try:
                stats = limiter.get_window_stats(item, key)
            except StorageError:
                continue
            if stats.remaining <= 0:
                wait = max(wait or 0.0, stats.reset_time - now)
        if wait is None:
            return 0
        # The window includes its edge: the oldest attempt leaves just after reset_time.
        return max(0, math.floor(wait)) + 1

    def clear(self, item: RateLimitItemPerSecond, value: str) -> None:
        """Forget the attempts on ``value`` (a successful login clears its username)."""
        key = digest(value)
        self._database.clear(item, key)
        if self._redis is not None:
            try:
                self._redis.clear(item, key)
            except StorageError as error:
                # Redis keeps the old attempts: stricter until they leave the window, never looser.
                log.warning("rate-limit reset in Redis failed (%s)", _reason(error))


class StoreStorage(Storage, MovingWindowSupport):
    """A ``limits`` storage over the shared database, with the moving window only."""

    STORAGE_SCHEME = None  # built directly, never from a storage URI

    def __init__(self, store, clock):
        super().__init__()
        self.store = store
        self.clock = clock

    @property
    def base_exceptions(self):
        return StoreUnavailable

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return self.store.acquire_entry(key, limit, expiry, self.clock(), amount)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        return self.store.moving_window(key, limit, expiry, self.clock())

    def clear(self, key: str) -> None:
        self.store.clear_entries(key)

    def check(self) -> bool:
        try:
            self.store.ping()
        except StoreUnavailable:
            return False
        return True

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("StoreStorage serves the moving window only")

    def get(self, key: str) -> int:
        raise NotImplementedError("StoreStorage serves the moving window only")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("StoreStorage serves the moving window only")

    def reset(self) -> int | None:
        raise NotImplementedError("StoreStorage deletes single keys only, never by pattern")


class ClockedRedisStorage(RedisStorage):
    """The library's Redis storage and Lua scripts, with the injected clock instead of ``time.time()``.

    One try per call, ``REDIS_TIMEOUT`` each way: redis-py's default retries
    would wait seconds on an outage and could run an acquire twice.
    """

    STORAGE_SCHEME = None

    def __init__(self, uri: str, clock, **options):
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.clock = clock
        options.setdefault("socket_timeout", REDIS_TIMEOUT)
        options.setdefault("socket_connect_timeout", REDIS_TIMEOUT)
        options.setdefault("retry", Retry(NoBackoff(), 0))
        super().__init__(uri, wrap_exceptions=True, **options)

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        key = self.prefixed_key(key)
        return bool(self.lua_acquire_moving_window([key], [self.clock(), limit, expiry, amount]))

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        key = self.prefixed_key(key)
        now = self.clock()
        window = self.lua_moving_window([key], [now - expiry, limit])
        if window:
            return float(window[0]), int(window[1])
        return now, 0


def _reason(error: StorageError) -> str:
    return type(error.storage_error).__name__

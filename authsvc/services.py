"""The single wiring point: settings, store, key ring, token minter,
revocations and rate limiter, built once and shared by the web app and the CLI.
"""

import logging
import time
from dataclasses import dataclass
from dataclasses import field

from .config import Settings
from .errors import StoreUnavailable
from .keyring import KeyRing
from .ratelimit import Limiter
from .revocation import NullNotifier
from .revocation import RedisNotifier
from .revocation import Revocations
from .store import Store
from .store import open_store
from .tokens import TokenMinter


@dataclass
class Services:
    settings: Settings
    store: Store
    keyring: KeyRing
    tokens: TokenMinter
    revocations: Revocations
    limiter: Limiter
    clock: object
    housekeeping_interval: float = 60.0
    _last_housekeeping: float = field(default=float("-inf"), repr=False)

    def close(self) -> None:
        self.store.close()

    def housekeeping(self) -> None:
        """Purge expired codes, refresh tokens, revocations and counters, at most once an interval per process."""
        started = time.monotonic()
        if started - self._last_housekeeping < self.housekeeping_interval:
            return
        self._last_housekeeping = started
        try:
            purged = self.store.purge_expired(self.clock())
        except StoreUnavailable:
            return
        if purged:
            logging.getLogger(__name__).info("housekeeping purged %d expired rows", purged)


def build(settings: Settings, *, clock=time.time, keyring: KeyRing | None = None) -> Services:
    """Open the store and the key ring named by ``settings`` (both must exist)."""
    store = open_store(settings.database_url, clock=clock)
    if keyring is None:
        keyring = open_keyring(settings, clock=clock)
    notifier = RedisNotifier(settings.redis_url, settings) if settings.redis_url else NullNotifier()
    return Services(
        settings=settings,
        store=store,
        keyring=keyring,
        tokens=TokenMinter(settings, keyring, clock),
        revocations=Revocations(settings, store, clock, notifier),
        limiter=Limiter(store, clock, settings.redis_url),
        clock=clock,
    )


def open_keyring(settings: Settings, *, clock=time.time, create: bool = False) -> KeyRing:
    """Open the ring; with ``create``, make the first active key when it is empty."""
    kwargs = {"clock": clock, "retire_after": settings.longest_token_ttl}
    if not create:
        return KeyRing(settings.keys_dir, **kwargs)
    # ID tokens default to RS256 whatever signs access tokens, so a new ring gets both.
    for alg in dict.fromkeys(("RS256", settings.signing_alg)):
        ring = KeyRing.init(settings.keys_dir, alg=alg, **kwargs)
    return ring

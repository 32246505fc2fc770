"""The single wiring point: settings, store, key ring, token minter,
revocations and rate limiter, built once and shared by the web app and the CLI.
"""

import time
from dataclasses import dataclass

from .config import Settings
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

    def close(self) -> None:
        self.store.close()


def build(settings: Settings, *, clock=time.time, keyring: KeyRing | None = None) -> Services:
    """Open the store and the key ring named by ``settings`` (both must exist)."""
    store = open_store(settings.database_url, clock=clock)
    if keyring is None:
        keyring = open_keyring(settings, clock=clock)
    notifier = RedisNotifier(settings.redis_url) if settings.redis_url else NullNotifier()
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
    if create:
        return KeyRing.init(settings.keys_dir, alg=settings.signing_alg, **kwargs)
    return KeyRing(settings.keys_dir, **kwargs)

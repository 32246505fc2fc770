"""The single wiring point: settings, store, key ring, token minter,
revocations and rate limiter, built once and shared by the web app and the CLI.
"""

import hashlib
import logging
import pathlib
import time
from dataclasses import dataclass
from dataclasses import field

from .backchannel import LogoutSender
from .config import Settings
from .errors import StoreUnavailable
from .events import security_event
from .keyring import KeyRing
from .keyring import Status
from .keyring.database import DatabaseStore
from .keyring.database import KeyEncryption
from .keyring.files import FileStore
from .keyring.signals import RedisSignal
from .ratelimit import Limiter
from .revocation import NullNotifier
from .revocation import RedisNotifier
from .revocation import Revocations
from .store import Store
from .store import open_store
from .store.housekeeping import Housekeeper
from .tokens import TokenMinter

# How often each process looks for a key-ring change when no Redis message wakes it.
KEY_POLL_INTERVAL = 1.0


@dataclass
class Services:
    settings: Settings
    store: Store
    keyring: KeyRing
    tokens: TokenMinter
    revocations: Revocations
    limiter: Limiter
    clock: object
    # Started by the web app in each worker (never by the CLI): see authsvc.backchannel.
    logout_sender: LogoutSender | None = None
    housekeeping_interval: float = 60.0
    # True when build() opened the ring (and its watcher): close() then stops it.
    owns_keyring: bool = False
    _last_housekeeping: float = field(default=float("-inf"), repr=False)
    _housekeeper: Housekeeper = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._housekeeper = Housekeeper(self)

    def start_housekeeping(self) -> None:
        """Run housekeeping from a daemon thread of this process (the web app, once per worker), not from requests."""
        self._housekeeper.start()

    def close(self) -> None:
        self._housekeeper.stop()
        if self.logout_sender is not None:
            self.logout_sender.stop()
        self.store.close()
        if self.owns_keyring:
            self.keyring.close()

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


def build(settings: Settings, *, clock=time.time, keyring: KeyRing | None = None, watch_keys: bool = True) -> Services:
    """Open the store and the key ring named by ``settings`` (both must exist).

    A ring opened here is watched from a background thread (``watch_keys``), so
    requests never reload it; a ring passed in is the caller's to manage.
    """
    store = open_store(settings.database_url, clock=clock)
    owns_keyring = keyring is None
    if keyring is None:
        keyring = open_keyring(settings, clock=clock, watch=watch_keys)
    notifier = RedisNotifier(settings.redis_url, settings) if settings.redis_url else NullNotifier()
    tokens = TokenMinter(settings, keyring, clock)
    logout_sender = LogoutSender(store, tokens, clock)
    return Services(
        settings=settings,
        store=store,
        keyring=keyring,
        tokens=tokens,
        revocations=Revocations(settings, store, clock, notifier, on_logouts_queued=logout_sender.wake),
        limiter=Limiter(store, clock, settings.redis_url, redis_prefix=redis_prefix(settings)),
        clock=clock,
        logout_sender=logout_sender,
        owns_keyring=owns_keyring,
    )


def redis_prefix(settings: Settings) -> str:
    """Where this issuer's rate limits live in Redis: deployments sharing a Redis keep apart."""
    return "authsvc:rl:" + hashlib.sha256(settings.issuer.encode()).hexdigest()[:16]


def open_keyring(
    settings: Settings, *, clock=time.time, create: bool = False, watch: bool = False, manage: bool = False
) -> KeyRing:
    """Open the ring of ``settings.key_store``.

    ``create`` makes the first active key (and its published successor) when the ring
    is empty; ``watch`` reloads it from a background thread, woken through Redis when
    configured; ``manage`` opens it as the ``keys`` commands do: a ring with no keys is
    fine, and no private key is loaded.
    """
    store = open_key_store(settings, settings.key_store)
    signal = RedisSignal(settings.redis_url, settings.issuer) if settings.redis_url else None
    kwargs = {
        "clock": clock,
        "retire_after": settings.longest_token_ttl,
        "check_interval": KEY_POLL_INTERVAL,
        "on_change": signal.publish if signal else None,
    }
    try:
        if manage:
            return KeyRing(store, allow_empty=True, **kwargs)
        if not create:
            ring = KeyRing(store, **kwargs)
        else:
            # ID tokens default to RS256 whatever signs access tokens, so a new ring gets both.
            for alg in dict.fromkeys(("RS256", settings.signing_alg)):
                before = {key.kid for key in KeyRing(store, allow_empty=True, **kwargs).keys()}
                ring = KeyRing.init(store, alg=alg, **kwargs)
                for key in ring.keys():
                    if key.kid not in before:
                        event = "key.rotated" if key.status is Status.ACTIVE else "key.added"
                        security_event(event, kid=key.kid, alg=key.alg, status=key.status.value)
    except BaseException:
        store.close()
        raise
    if watch:
        ring.watch()
        if signal is not None:
            signal.listen(ring.poke)
            ring.close_with(signal.close)
    return ring


def open_key_store(settings: Settings, kind: str):
    """The backend of the ring: the ``keys_dir`` directory, or the shared database."""
    if kind == "files":
        return FileStore(pathlib.Path(settings.keys_dir))
    from .store.sql_signing_keys import SigningKeyTable

    return DatabaseStore(SigningKeyTable(settings.database_url), KeyEncryption(settings.key_encryption_key))

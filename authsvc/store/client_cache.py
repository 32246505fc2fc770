"""Clients as the token endpoint reads them: from memory, at most ``TTL`` seconds old.

Every token request authenticates a client, and reading it from the database
cost more than signing the token. A process keeps each client it read for
``TTL`` seconds and then reads it again, so a client deleted, or whose secret
was rotated, by any process on any instance is refused everywhere within
``TTL`` (the promise is one second; ``TTL`` leaves room for a slow read).

A change made through any ``Store`` of this process (the CLI run in-process,
tests, a single-process server) is seen at once: ``update_client`` and
``delete_client`` call ``client_changed``, which drops the entry from every
cache of the process. No answer for an unknown client is kept: a client
created anywhere can be used at once.
"""

import threading
import time
import weakref
from collections.abc import Callable

from .records import Client

# Seconds a client read from the store is answered from memory; well inside the one-second promise.
TTL = 0.5
# A bound on memory whatever client ids the requests name; past it the oldest entry goes.
MAX_ENTRIES = 10_000

_caches: "weakref.WeakSet[ClientCache]" = weakref.WeakSet()
_caches_lock = threading.Lock()


def client_changed(client_id: str) -> None:
    """Forget ``client_id`` in every cache of this process (it was updated or deleted)."""
    with _caches_lock:
        caches = list(_caches)
    for cache in caches:
        cache.forget(client_id)


class ClientCache:
    """``get(client_id)``: the store's ``get_client``, answered from memory for up to ``ttl`` seconds."""

    def __init__(self, store, *, ttl: float = TTL, clock: Callable[[], float] = time.monotonic):
        self._store = store
        self._ttl = ttl
        self._clock = clock
        # client_id -> (record, monotonic time it stops being used)
        self._entries: dict[str, tuple[Client, float]] = {}
        # Bumped by every forget: a read that started before one must not be kept.
        self._generation = 0
        self._lock = threading.Lock()
        with _caches_lock:
            _caches.add(self)

    def get(self, client_id: str) -> Client:
        """Return the client (NotFound, ValueError and StoreUnavailable as ``Store.get_client``)."""
        now = self._clock()
        entry = self._entries.get(client_id)
        if entry is not None and now < entry[1]:
            return entry[0]
        generation = self._generation
        # The expiry counts from before the read: an entry never outlives its read by more than ttl.
        record = self._store.get_client(client_id)
        with self._lock:
            if generation == self._generation:
                if client_id not in self._entries and len(self._entries) >= MAX_ENTRIES:
                    del self._entries[next(iter(self._entries))]
                self._entries[client_id] = (record, now + self._ttl)
        return record

    def forget(self, client_id: str) -> None:
        with self._lock:
            self._generation += 1
            self._entries.pop(client_id, None)

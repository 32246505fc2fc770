"""The signing-key ring, shared by every instance: in a directory (``keys/``) or in the database.

Each key moves through ``next`` (published in the JWKS, not signing) →
``active`` (signs; one per algorithm) → ``retired`` (published until every
token it signed has expired) → pruned. A rotation always leaves a published
``next`` behind it, so the following rotation promotes a key verifiers have
already seen. The store (``files.FileStore`` or ``database.DatabaseStore``)
records where each key is, with its public JWK, so the JWKS, ``keys list`` and
verification never parse a private key; a serving ring loads the private keys
of its active keys only.

The CLI changes the ring under the store's writer lock. A serving instance
reloads off the request path: ``watch()`` starts a thread that polls the store's
signature (the manifest's mtime, or the database's version number) every
``check_interval`` and can be woken at once (Redis, ``signals``). It builds the
new immutable snapshot completely, private keys loaded, and swaps it in with one
assignment, so readers never lock, never see half a ring and never pay for a
reload; a hand-broken store never takes down a server that holds a good ring.
Time comes from an injected ``clock``.

A ring that was never started (no directory, an empty one, or no rows) is a ring
with no keys: the CLI lists it as empty and its first ``add`` or ``rotate``
creates it, the directory 0700. A server cannot sign with it, so opening a ring
to serve from (the default) refuses one without an active key.
"""

import base64
import dataclasses
import enum
import functools
import hashlib
import json
import logging
import math
import os
import pathlib
import threading
import time
from dataclasses import dataclass
from dataclasses import field

from ..errors import KeyRingError
from ..errors import StoreUnavailable
from . import algorithms
from . import files

__all__ = ["JWKS_MAX_AGE", "Key", "KeyRing", "KeyRingError", "RotateResult", "RotationTooSoon", "Status", "migrate"]

JWKS_MAX_AGE = 300
SESSION_SECRET_BYTES = 32
FIRST_KEY_HINT = "create one with `python -m authsvc keys rotate` (add `--alg ES256` or `--alg EdDSA` for those)"

log = logging.getLogger(__name__)


class Status(str, enum.Enum):
    """Where a key is in its life: published, then signing, then verifying only."""

    NEXT = "next"
    ACTIVE = "active"
    RETIRED = "retired"

    def __str__(self):
        # "next", not "Status.NEXT", in f-strings and CLI output on every Python version.
        return self.value


# Every status is published: a key verifiers may no longer need is pruned, not hidden.
PUBLISHED = (Status.NEXT, Status.ACTIVE, Status.RETIRED)


class RotationTooSoon(KeyRingError):
    """The ``next`` key has not been published for the JWKS max-age yet; ``safe_at`` says when."""

    def __init__(self, message, safe_at):
        super().__init__(message)
        self.safe_at = safe_at


@dataclass(frozen=True)
class Key:
    """One signing key; its private half (loaded for active keys only) stays out of repr and comparisons."""

    kid: str
    alg: str
    status: Status
    created_at: int
    activated_at: int | None
    retired_at: int | None
    jwk: dict = field(repr=False, compare=False)
    private_key: object = field(default=None, repr=False, compare=False)

    def public_jwk(self):
        """Return the public JWK (kty, kid, alg, use=sig and public members only)."""
        return dict(self.jwk)

    @functools.cached_property
    def public_key(self):
        """The verifying key, built from the public JWK (no private-key parsing)."""
        return algorithms.public_key_from_jwk(self.jwk)

    def describe(self):
        """Return what `keys list` shows: times as ISO-8601 UTC, nothing private."""
        return {
            "kid": self.kid,
            "alg": self.alg,
            "status": self.status.value,
            "created_at": _iso(self.created_at),
            "activated_at": _iso(self.activated_at),
            "retired_at": _iso(self.retired_at),
        }

    def manifest_entry(self):
        """Return this key's line in the store: its fields, status and public JWK."""
        return {name: getattr(self, name) for name in files.FIELDS} | {"status": self.status.value, "jwk": self.jwk}


@dataclass(frozen=True)
class RotateResult:
    """What `keys rotate` did; activated is None when --if-older-than found the active key too young."""

    activated: Key | None
    retired: Key | None
    published_for: float | None
    # The key published to follow, and the retired keys pruned on the way.
    next: Key | None = None
    pruned: tuple = ()


@dataclass(frozen=True)
class _Ring:
    """One immutable state of the ring; readers grab the reference and never see half a reload."""

    keys: tuple
    signature: object
    jwks_keys: tuple
    jwks_json: bytes
    etag: str
    version: str


class KeyRing:
    """The key ring in ``store`` (a path means a ``files.FileStore``); see the package docstring."""

    def __init__(
        self,
        store,
        *,
        clock=time.time,
        retire_after=660,
        check_interval=1.0,
        allow_empty=False,
        private_keys=None,
        on_change=None,
    ):
        """Open the ring; without ``allow_empty``, refuse one that cannot sign.

        ``allow_empty`` is for administering the ring (the ``keys`` commands): a ring
        never started, or without an active key, opens then, nothing is written and,
        unless ``private_keys`` says otherwise, no private key is loaded at all.
        ``on_change(version)`` is called after this process changed the ring.
        """
        if isinstance(store, str | os.PathLike):
            store = files.FileStore(pathlib.Path(store))
        self.store = store
        self.path = store.path
        self.clock = clock
        self.retire_after = retire_after
        self.check_interval = check_interval
        self.on_change = on_change
        self.last_error = None
        self._private_keys = (not allow_empty) if private_keys is None else private_keys
        self._lock = threading.Lock()
        self._secret = None
        self._watcher = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._on_close = []
        self._ring = self._load(missing_ok=True)
        if not allow_empty and not any(key.status is Status.ACTIVE for key in self._ring.keys):
            raise KeyRingError(f"key ring {self.store.where} has no active signing key; {FIRST_KEY_HINT}")
        self._next_check = time.monotonic() + check_interval

    @classmethod
    def init(cls, store, *, alg="RS256", **kw):
        """Open ``store`` to serve from, first creating an active ``alg`` key (and its next) when absent."""
        algorithms.check_alg(alg)
        # Nothing is written when the ring is complete, so a read-only mount works.
        ring = cls(store, allow_empty=True, private_keys=True, **kw)
        if not any(key.alg == alg and key.status is Status.ACTIVE for key in ring.keys()):
            # An infinite --if-older-than makes this a no-op if another process won the race.
            ring.rotate(alg, if_older_than=math.inf)
        return ring

    # --- reading: lock-free, one snapshot per call ------------------------------------------

    def keys(self):
        """Return every key, oldest first."""
        return list(self._ring.keys)

    def active(self, alg):
        """Return the one key that signs ``alg`` tokens."""
        for key in self._ring.keys:
            if key.alg == alg and key.status is Status.ACTIVE:
                return key
        algorithms.check_alg(alg)
        hint = f"run `python -m authsvc keys rotate --alg {alg}`"
        raise KeyRingError(f"no active {alg} key in {self.store.where}; {hint}")

    def published(self):
        """Return the keys verifiers must know: next, active and retired."""
        return [key for key in self._ring.keys if key.status in PUBLISHED]

    def jwks(self):
        """Return the JWK Set of the published keys (a fresh copy; safe to mutate)."""
        return {"keys": [dict(jwk) for jwk in self._ring.jwks_keys]}

    def jwks_json(self):
        """Return the JWK Set serialised once per ring change; the bytes jwks_etag() hashes."""
        return self._ring.jwks_json

    def jwks_etag(self):
        """Return the strong, quoted ETag of jwks_json()."""
        return self._ring.etag

    @property
    def jwks_max_age(self):
        """Seconds verifiers may cache the JWKS; publish a next key at least this long."""
        return JWKS_MAX_AGE

    @property
    def version(self):
        """An opaque string that changes whenever the ring's content changes."""
        return self._ring.version

    def session_secret(self):
        """Return the 32-byte secret for browser cookies and CSRF tokens, creating it once."""
        if self._secret is None:
            self._secret = self.store.session_secret(SESSION_SECRET_BYTES)
        return self._secret

    # --- reloading, off the request path ------------------------------------------------------

    def watch(self):
        """Reload from a background thread from now on; requests then never reload."""
        with self._lock:
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watch, name="authsvc-keyring", daemon=True)
                self._watcher.start()
        return self

    def poke(self):
        """Make the watcher look now (a Redis message said the ring changed)."""
        self._wake.set()

    def close(self):
        """Stop the watcher and whatever wakes it, if any, and release the store."""
        self._stop.set()
        self._wake.set()
        for stop in self._on_close:
            stop()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
        self.store.close()

    def close_with(self, stop) -> None:
        """Call ``stop()`` when the ring closes (the Redis listener that wakes its watcher)."""
        self._on_close.append(stop)

    def reload_if_changed(self):
        """Reload if the store changed (checked at most once per check_interval).

        With a watcher running this returns False at once: the watcher reloads,
        and callers on the request path pay nothing.
        """
        if self._watcher is not None:
            return False
        now = time.monotonic()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return False
        try:
            self._next_check = now + self.check_interval
            return self._reload()
        finally:
            self._lock.release()

    def _watch(self):
        while not self._stop.is_set():
            self._wake.wait(self.check_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                with self._lock:
                    self._reload()
            except Exception:  # noqa: BLE001 - the watcher must outlive any surprise; it retries next time
                log.exception("key ring reload failed; keeping the last good ring")

    def _reload(self):
        """Swap in the store's current ring if it changed; called with ``_lock`` held."""
        try:
            # A broken store is retried every interval: the key file it names may
            # arrive after it (rsync, a hand copy), without the manifest changing again.
            if self.store.signature() == self._ring.signature:
                return False
            ring = self._load()
            if self._private_keys and not any(key.status is Status.ACTIVE for key in ring.keys):
                raise KeyRingError(f"{self.store.where}: no active signing key left")
        except KeyRingError as exc:
            if str(exc) != self.last_error:
                log.warning("key ring not reloaded, keeping the last good one: %s", exc)
            self.last_error = str(exc)
            return False
        except StoreUnavailable as exc:
            # The last good ring still signs; the store's own outage is /readyz's store check.
            log.warning("key ring not reloaded, keeping the last good one: %s", exc)
            return False
        self._ring = ring
        self.last_error = None
        return True

    def _load(self, *, missing_ok=False):
        """Read the store and build a complete snapshot, private keys of active keys loaded.

        ``missing_ok`` reads a ring never started as no keys. Reloads never pass it: a
        manifest deleted under a running server is a broken ring, not an empty one.
        """
        entries, signature = self.store.read(missing_ok=missing_ok)
        return self._snapshot(entries, signature, {})

    def _snapshot(self, entries, signature, fresh):
        """Build a snapshot of ``entries``, loading missing private keys of active ones.

        Private keys held by the current snapshot, or in ``fresh``, are reused: parsing
        an RSA key costs milliseconds and the kid already proves its content.
        """
        keys = [_key(entry) for entry in entries]
        actives = [key.alg for key in keys if key.status is Status.ACTIVE]
        if len(actives) != len(set(actives)):
            raise KeyRingError(f"{self.store.where}: more than one active key of one algorithm")
        if self._private_keys:
            held = {key.kid: key.private_key for key in getattr(self, "_ring", _EMPTY).keys if key.private_key}
            held |= fresh
            missing = [e for e in entries if e["status"] == "active" and e["kid"] not in held]
            held |= self.store.load_private(missing)
            keys = [
                dataclasses.replace(key, private_key=held[key.kid]) if key.status is Status.ACTIVE else key
                for key in keys
            ]
        return _snapshot(keys, signature)

    # --- changing the ring ----------------------------------------------------------------

    def add(self, alg="RS256", *, bits=2048):
        """Publish a new ``next`` key of ``alg``, replacing the one waiting, if any; return it."""
        return self.add_next(alg, bits=bits)[0]

    def add_next(self, alg="RS256", *, bits=2048):
        """Like add(), and also return the next keys it replaced (they never signed)."""
        # Generated before taking the lock: a large RSA key can take a second to find.
        private_key = algorithms.generate(alg, bits)

        def change(keys, now):
            new = _new_key(private_key, alg, now)
            replaced = [key for key in keys if key.alg == alg and key.status is Status.NEXT]
            kept = [key for key in keys if key not in replaced]
            return kept + [new], (new, replaced), [new]

        return self._mutate(change)

    def rotate(self, alg="RS256", *, if_older_than=None, min_published=0):
        """Promote the ``next`` key of ``alg`` (or a new one), retire the active one, publish a fresh next.

        Retired keys past their window are pruned on the way. With ``min_published``,
        a rotation that would activate a key published for less than that refuses
        with RotationTooSoon (committing a fresh next first when none was waiting);
        the first key of an algorithm is never refused: no verifier can know its predecessor.
        """
        algorithms.check_alg(alg)
        # The successor is generated outside the lock; it is used unless another next is waiting.
        successor_key = algorithms.generate(alg)

        def change(keys, now):
            old = next((k for k in keys if k.alg == alg and k.status is Status.ACTIVE), None)
            if if_older_than is not None and old is not None:
                if now - old.activated_at < if_older_than:
                    return None, RotateResult(None, None, None), []
            waiting = sorted((k for k in keys if k.alg == alg and k.status is Status.NEXT), key=_age)
            if old is not None and min_published > 0:
                if not waiting:
                    fresh = _new_key(successor_key, alg, now)
                    return keys + [fresh], _Refused(fresh, now + min_published, now, True), [fresh]
                if now - waiting[0].created_at < min_published:
                    return None, _Refused(waiting[0], waiting[0].created_at + min_published, now), []
            written = []
            if waiting:
                new = waiting[0]
                published_for = max(0.0, now - new.created_at)
            else:
                # A first start (or a ring from before successors existed): its first key too.
                new = _new_key(algorithms.generate(alg), alg, now)
                keys, published_for = keys + [new], 0.0
                written.append(new)
            activated = dataclasses.replace(new, status=Status.ACTIVE, activated_at=int(now))
            swap = {new.kid: activated}
            retired = None
            if old is not None:
                retired = dataclasses.replace(old, status=Status.RETIRED, retired_at=int(now))
                swap[old.kid] = retired
            keys = [swap.get(key.kid, key) for key in keys]
            follower = next((k for k in keys if k.alg == alg and k.status is Status.NEXT), None)
            if follower is None:
                follower = _new_key(successor_key, alg, now)
                keys.append(follower)
                written.append(follower)
            pruned = [key for key in keys if self._expired(key, now)]
            keys = [key for key in keys if key not in pruned]
            return keys, RotateResult(activated, retired, published_for, follower, tuple(pruned)), written

        result = self._mutate(change)
        if isinstance(result, _Refused):
            raise result.error(alg)
        return result

    def prune(self):
        """Drop retired keys whose retirement window has passed; return them."""
        if not self.store.started():
            return []  # a ring never started has nothing to prune; do not create it

        def change(keys, now):
            gone = [key for key in keys if self._expired(key, now)]
            return ([key for key in keys if key not in gone] if gone else None), gone, []

        return self._mutate(change)

    def _expired(self, key, now):
        return key.status is Status.RETIRED and key.retired_at + self.retire_after <= now

    def _mutate(self, change):
        """Apply ``change(keys, now) -> (keys | None, result, new_keys)`` under the store's writer lock."""

        def on_entries(entries):
            keys, result, new_keys = change([_key(entry) for entry in entries], self.clock())
            if keys is None:
                return None, result, {}
            return [key.manifest_entry() for key in keys], result, {key.kid: key.private_key for key in new_keys}

        fresh = {}

        def recording(entries):
            new, result, private_keys = on_entries(entries)
            fresh.update(private_keys)
            return new, result, private_keys

        result, entries, signature = self.store.mutate(recording)
        with self._lock:
            changed = signature != self._ring.signature
            self._ring = self._snapshot(entries, signature, fresh)
            self.last_error = None
        if changed and self.on_change is not None:
            try:
                self.on_change(signature)
            except Exception as exc:  # noqa: BLE001 - a hint to other instances only; they also poll
                log.warning("key ring change not announced: %s", type(exc).__name__)
        return result


@dataclass(frozen=True)
class _Refused:
    """A rotation refused for a next key published too briefly (after a fresh next was committed, maybe)."""

    waiting: Key
    safe_at: float
    now: float
    published_now: bool = False

    def error(self, alg):
        seconds = max(1, math.ceil(self.safe_at - self.now))
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(self.safe_at)))
        published = max(0, int(self.now - self.waiting.created_at))
        if self.published_now:
            what = f"no {alg} key was waiting as next; published {self.waiting.kid} now"
        else:
            what = f"the next {alg} key {self.waiting.kid} was published {published} s ago"
        return RotationTooSoon(
            f"not rotated: {what}; verifiers may cache the JWKS for {JWKS_MAX_AGE} s. "
            f"Safe from {when} (in {seconds} s), or use --force",
            self.safe_at,
        )


def migrate(source, target, *, force=False):
    """Copy every key (private halves included) and the session secret from ``source`` to ``target``.

    Idempotent: a target that already holds the same keys is left as it is. A target
    holding other keys is refused unless ``force``, which replaces its ring. The
    source is left as it was. Return (keys copied, whether anything was written).
    """
    entries, _ = source.read(missing_ok=True)
    if not entries:
        raise KeyRingError(f"{source.where} holds no keys: nothing to move")
    private_keys = source.load_private(entries)
    secret = source.existing_secret(SESSION_SECRET_BYTES)
    copied = [_key(entry) for entry in entries]

    def change(current):
        if _same_ring(current, entries):
            return None, "same", {}
        if current and not force:
            raise KeyRingError(
                f"{target.where} already holds {len(current)} key(s) that differ from {source.where}; "
                "use --force to replace them"
            )
        return entries, "written", private_keys

    result, _, _ = target.mutate(change)
    wrote = result == "written"
    if secret is not None and (wrote or target.existing_secret(SESSION_SECRET_BYTES) is None):
        target.put_secret(secret)
        wrote = True
    return copied, wrote


def _same_ring(current, entries):
    def shape(items):
        return sorted(
            (e["kid"], e["alg"], e["status"], e["created_at"], e["activated_at"], e["retired_at"]) for e in items
        )

    return shape(current) == shape(entries)


_EMPTY = _Ring((), None, (), b"", "", "")


def _age(key):
    return key.created_at


def _key(entry):
    fields = {name: entry[name] for name in files.FIELDS}
    return Key(**fields | {"status": Status(entry["status"]), "jwk": entry["jwk"]})


def _new_key(private_key, alg, now):
    kid = algorithms.kid_of(private_key)
    jwk = algorithms.public_jwk(private_key, kid, alg)
    return Key(kid, alg, Status.NEXT, int(now), None, None, jwk, private_key)


def _snapshot(keys, signature):
    # Oldest first; among keys made in the same second, the one that signed first.
    keys = tuple(
        sorted(keys, key=lambda key: (key.created_at, key.activated_at is None, key.activated_at or 0, key.kid))
    )
    jwks_keys = tuple(key.public_jwk() for key in keys if key.status in PUBLISHED)
    jwks_json = json.dumps({"keys": list(jwks_keys)}, separators=(",", ":")).encode("utf-8")
    digest = hashlib.sha256(jwks_json).digest()
    etag = '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") + '"'
    entries = json.dumps([key.manifest_entry() for key in keys], sort_keys=True)
    version = hashlib.sha256(entries.encode("utf-8")).hexdigest()[:16]
    return _Ring(keys, signature, jwks_keys, jwks_json, etag, version)


def _iso(seconds):
    return None if seconds is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

"""The signing-key ring kept in a directory (``keys/`` by default) shared by every instance.

Each key lives as ``<kid>.pem`` and moves through ``next`` (published in the JWKS,
not signing) → ``active`` (signs; one per algorithm) → ``retired`` (published
until every token it signed has expired) → pruned; ``manifest.json`` records
where each key is. The CLI changes the ring under a file lock; running
instances notice through ``reload_if_changed()``, which swaps in a new immutable
snapshot, so readers never lock and a hand-broken manifest never takes down a
server that already holds a good ring. Time comes from an injected ``clock``.

A ring that was never started (no directory, or an empty one) is a ring with no
keys: the CLI lists it as empty and its first ``add`` or ``rotate`` creates it,
the directory 0700. A server cannot sign with it, so opening a ring to serve
from (the default) refuses one without an active key.
"""

import base64
import dataclasses
import enum
import hashlib
import json
import logging
import math
import pathlib
import threading
import time
from dataclasses import dataclass
from dataclasses import field

from ..errors import KeyRingError
from . import algorithms
from . import files

__all__ = ["JWKS_MAX_AGE", "Key", "KeyRing", "KeyRingError", "RotateResult", "Status"]

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


@dataclass(frozen=True)
class Key:
    """One signing key; its private half stays out of repr, comparisons and exports."""

    kid: str
    alg: str
    status: Status
    created_at: int
    activated_at: int | None
    retired_at: int | None
    private_key: object = field(repr=False, compare=False)

    def public_jwk(self):
        """Return the public JWK (kty, kid, alg, use=sig and public members only)."""
        return algorithms.public_jwk(self.private_key, self.kid, self.alg)

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
        """Return this key's line in manifest.json."""
        return {name: getattr(self, name) for name in files.FIELDS} | {"status": self.status.value}


@dataclass(frozen=True)
class RotateResult:
    """What `keys rotate` did; all None when --if-older-than found the active key too young."""

    activated: Key | None
    retired: Key | None
    published_for: float | None


@dataclass(frozen=True)
class _Ring:
    """One immutable state of the ring; readers grab the reference and never see half a reload."""

    keys: tuple
    signature: tuple | None
    jwks_keys: tuple
    jwks_json: bytes
    etag: str
    version: str


class KeyRing:
    """The key ring in ``path``; see the package docstring for the lifecycle."""

    def __init__(self, path, *, clock=time.time, retire_after=660, check_interval=1.0, allow_empty=False):
        """Open the ring in ``path``; without ``allow_empty``, refuse one that cannot sign.

        ``allow_empty`` is for administering the ring (the ``keys`` commands): a ring
        never started, or without an active key, opens then, and nothing is written.
        """
        self.path = pathlib.Path(path)
        self.clock = clock
        self.retire_after = retire_after
        self.check_interval = check_interval
        self.last_error = None
        self._lock = threading.Lock()
        self._secret = None
        self._ring = self._load({}, missing_ok=True)
        if not allow_empty and not any(key.status is Status.ACTIVE for key in self._ring.keys):
            raise KeyRingError(f"key ring {self.path} has no active signing key; {FIRST_KEY_HINT}")
        self._next_check = time.monotonic() + check_interval

    @classmethod
    def init(cls, path, *, alg="RS256", **kw):
        """Open the ring in ``path``, creating it and an active ``alg`` key when absent."""
        algorithms.check_alg(alg)
        # Nothing is written when the ring is complete, so a read-only mount works.
        ring = cls(path, allow_empty=True, **kw)
        if not any(key.alg == alg and key.status is Status.ACTIVE for key in ring.keys()):
            # An infinite --if-older-than makes this a no-op if another process won the race.
            ring.rotate(alg, if_older_than=math.inf)
        return ring

    def reload_if_changed(self):
        """Reload if manifest.json changed (checked at most once per check_interval)."""
        now = time.monotonic()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return False
        try:
            self._next_check = now + self.check_interval
            # A broken manifest is retried every interval: the key file it names may
            # arrive after it (rsync, a hand copy), without the manifest changing again.
            if files.manifest_signature(self.path) == self._ring.signature:
                return False
            try:
                ring = self._load(self._loaded_keys())
            except KeyRingError as exc:
                if str(exc) != self.last_error:
                    log.warning("key ring not reloaded, keeping the last good one: %s", exc)
                self.last_error = str(exc)
                return False
            self._ring = ring
            self.last_error = None
            return True
        finally:
            self._lock.release()

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
        raise KeyRingError(f"no active {alg} key in {self.path}; {hint}")

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
        """An opaque string that changes whenever the manifest's content changes."""
        return self._ring.version

    def session_secret(self):
        """Return the 32-byte secret for browser cookies and CSRF tokens, creating it once."""
        if self._secret is None:
            self._secret = files.read_or_create_secret(self.path, SESSION_SECRET_BYTES)
        return self._secret

    def add(self, alg="RS256", *, bits=2048):
        """Create a key with status next: published, not yet signing."""
        # Generated before taking the lock: a large RSA key can take seconds to find.
        private_key = algorithms.generate(alg, bits)

        def change(keys, now):
            key = _new_key(private_key, alg, now)
            return keys + [key], key, [key]

        return self._mutate(change)

    def rotate(self, alg="RS256", *, if_older_than=None):
        """Make the oldest next key of ``alg`` (or a new one) active and retire the old one."""
        algorithms.check_alg(alg)

        def change(keys, now):
            old = next((k for k in keys if k.alg == alg and k.status is Status.ACTIVE), None)
            if if_older_than is not None and old is not None:
                if now - old.activated_at < if_older_than:
                    return None, RotateResult(None, None, None), []
            waiting = [k for k in keys if k.alg == alg and k.status is Status.NEXT]
            written = []
            if waiting:
                new = waiting[0]
                published_for = max(0.0, now - new.created_at)
            else:
                new = _new_key(algorithms.generate(alg), alg, now)
                keys, written, published_for = keys + [new], [new], 0.0
            activated = dataclasses.replace(new, status=Status.ACTIVE, activated_at=int(now))
            swap = {new.kid: activated}
            retired = None
            if old is not None:
                retired = dataclasses.replace(old, status=Status.RETIRED, retired_at=int(now))
                swap[old.kid] = retired
            keys = [swap.get(key.kid, key) for key in keys]
            return keys, RotateResult(activated, retired, published_for), written

        return self._mutate(change)

    def prune(self):
        """Drop retired keys whose retirement window has passed; return them."""
        if not self.path.is_dir():
            return []  # a ring never started has nothing to prune; do not create it

        def change(keys, now):
            def expired(key):
                return key.status is Status.RETIRED and key.retired_at + self.retire_after <= now

            gone = [key for key in keys if expired(key)]
            return ([key for key in keys if not expired(key)] if gone else None), gone, []

        gone = self._mutate(change)
        # Only now that no manifest names them: a crash leaves an orphan file, never a gap.
        for key in gone:
            files.delete_key(self.path, key.kid)
        return gone

    def _mutate(self, change):
        """Apply ``change(keys, now) -> (keys | None, result, new_keys)`` under the writer lock."""
        # The first change to a ring never started creates it.
        files.ensure_dir(self.path)
        with files.locked(self.path):
            # Re-read under the lock: another instance may have rotated a moment ago.
            current = self._load(self._loaded_keys(), missing_ok=True)
            keys, result, new_keys = change(list(current.keys), self.clock())
            if keys is not None:
                for key in new_keys:
                    files.write_key(self.path, key.kid, algorithms.dump_pem(key.private_key))
                signature = files.write_manifest(self.path, [k.manifest_entry() for k in keys])
            with self._lock:
                self._ring = current if keys is None else _snapshot(keys, signature)
                self.last_error = None
        return result

    def _loaded_keys(self):
        return {key.kid: key.private_key for key in self._ring.keys}

    def _load(self, loaded, *, missing_ok=False):
        """Read the manifest and the keys it names, reusing already ``loaded`` private keys.

        ``missing_ok`` reads a ring never started as no keys. Reloads never pass it: a
        manifest deleted under a running server is a broken ring, not an empty one.
        """
        entries, signature = files.read_ring(self.path, loaded, missing_ok=missing_ok)
        keys = [Key(**entry | {"status": Status(entry["status"])}) for entry in entries]
        return _snapshot(keys, signature)


def _new_key(private_key, alg, now):
    return Key(algorithms.kid_of(private_key), alg, Status.NEXT, int(now), None, None, private_key)


def _snapshot(keys, signature):
    keys = tuple(sorted(keys, key=lambda key: key.created_at))
    jwks_keys = tuple(key.public_jwk() for key in keys if key.status in PUBLISHED)
    jwks_json = json.dumps({"keys": list(jwks_keys)}, separators=(",", ":")).encode("utf-8")
    digest = hashlib.sha256(jwks_json).digest()
    etag = '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") + '"'
    entries = json.dumps([key.manifest_entry() for key in keys], sort_keys=True)
    version = hashlib.sha256(entries.encode("utf-8")).hexdigest()[:16]
    return _Ring(keys, signature, jwks_keys, jwks_json, etag, version)


def _iso(seconds):
    return None if seconds is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

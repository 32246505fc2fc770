"""The ring's on-disk format: ``manifest.json``, one ``<kid>.pem`` per key, ``session.key``.

The manifest carries each key's public JWK (``jwk``), so listing the ring,
serving the JWKS and verifying need no private-key parsing; only the active
keys' PEM files are read by a serving instance. A manifest written before
``jwk`` existed is still read: the public JWK is then derived from the PEM once,
and the next write stores it.

Readers never lock: every file is replaced atomically (temp file in the same
directory, fsync, ``os.replace``), so a reader sees the old or the new version,
never half of one. Writers serialise on an exclusive ``flock`` of ``.lock`` and
re-read the manifest under it, which makes concurrent CLI runs and cron jobs on
several instances safe.
"""

import contextlib
import fcntl
import json
import os
import secrets

from ..errors import KeyRingError
from . import algorithms

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
SESSION_NAME = "session.key"
MANIFEST_VERSION = 1
FIELDS = ("kid", "alg", "status", "created_at", "activated_at", "retired_at")
STATUSES = ("next", "active", "retired")


def ensure_dir(path):
    """Create the ring directory, and any missing parent, as 0700 if absent.

    A directory that exists is left as it is: it is never widened, and one the
    operator made (a mounted volume) is theirs to set.
    """
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
            # Exactly 0700 whatever the umask: the owner must be able to write into it.
            os.chmod(directory, 0o700)
        except FileExistsError:
            continue  # another process made it a moment ago
        except OSError as exc:
            raise KeyRingError(f"key ring directory {directory}: cannot create ({exc.strerror})") from None


def manifest_signature(path):
    """Return (dev, inode, size, mtime_ns) of the manifest, or None if it cannot be stat'ed."""
    try:
        return _signature(os.stat(path / MANIFEST_NAME))
    except OSError:
        return None


def read_manifest(path, *, missing_ok=False):
    """Return (entries, signature) of the manifest; KeyRingError naming the file if unusable.

    With ``missing_ok``, a ring that was never started (no directory, or a directory
    without a manifest or key files) reads as no keys, with signature None.
    """
    where = path / MANIFEST_NAME
    try:
        with open(where, "rb") as handle:
            # fstat of the open file: the signature is exactly that of the bytes read.
            signature = _signature(os.fstat(handle.fileno()))
            raw = handle.read()
    except FileNotFoundError:
        if not path.is_dir():
            if missing_ok:
                return [], None
            raise KeyRingError(f"key ring directory {path} does not exist") from None
        if any(path.glob("*.pem")):
            # Key files without a manifest is a broken ring, not a new one: starting
            # afresh would drop keys that live tokens were signed with.
            raise KeyRingError(f"{where}: missing, but the directory holds key files") from None
        if missing_ok:
            return [], None
        raise KeyRingError(f"{where}: missing") from None
    except OSError as exc:
        raise KeyRingError(f"{where}: cannot read ({exc.strerror})") from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise KeyRingError(f"{where}: not valid JSON") from None
    if not isinstance(document, dict) or document.get("version") != MANIFEST_VERSION:
        raise KeyRingError(f'{where}: expected an object with "version": {MANIFEST_VERSION}')
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise KeyRingError(f'{where}: "keys" must be a list')
    checked = [_check_entry(entry, where) for entry in entries]
    _check_together(checked, where)
    return checked, signature


def write_manifest(path, entries):
    """Atomically replace the manifest with ``entries``; return its new signature."""
    # The same rules as on reading: never write a manifest that could not be opened.
    checked = [_check_entry(entry, path / MANIFEST_NAME) for entry in entries]
    _check_together(checked, path / MANIFEST_NAME)
    if any(entry["jwk"] is None for entry in checked):
        raise KeyRingError(f"{path / MANIFEST_NAME}: every key written needs its public JWK")
    document = {"version": MANIFEST_VERSION, "keys": checked}
    data = json.dumps(document, indent=2).encode("utf-8") + b"\n"
    return _signature(_write_atomic(path / MANIFEST_NAME, data))


def key_path(path, kid):
    """Return the file of ``kid``, refusing anything that is not a thumbprint."""
    if not isinstance(kid, str) or not algorithms.KID_PATTERN.fullmatch(kid):
        raise KeyRingError(f"{path / MANIFEST_NAME}: kid {kid!r:.60} is not an RFC 7638 thumbprint")
    return path / f"{kid}.pem"


def read_key(path, kid):
    """Return the PEM bytes of ``kid``."""
    where = key_path(path, kid)
    try:
        with open(where, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise KeyRingError(f"{where}: missing, but named in {MANIFEST_NAME}") from None
    except OSError as exc:
        raise KeyRingError(f"{where}: cannot read ({exc.strerror})") from None


def write_key(path, kid, pem):
    """Write (0600, fsynced) the PEM of ``kid``; call before the manifest names it."""
    _write_atomic(key_path(path, kid), pem)


def delete_key(path, kid):
    """Remove the file of ``kid``; call only after the manifest no longer names it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(key_path(path, kid))
    _fsync_dir(path)


@contextlib.contextmanager
def locked(path):
    """Hold the ring's exclusive writer lock for the ``with`` block."""
    where = path / LOCK_NAME
    try:
        fd = os.open(where, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise KeyRingError(f"{where}: cannot open lock file ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        # Closing the descriptor releases the flock.
        os.close(fd)


def read_or_create_secret(path, size):
    """Return the ``size``-byte session secret, creating it under the lock when absent."""
    secret = _read_secret(path / SESSION_NAME, size)
    if secret is None:
        with locked(path):
            secret = _read_secret(path / SESSION_NAME, size)
            if secret is None:
                secret = secrets.token_bytes(size)
                _write_atomic(path / SESSION_NAME, secret)
    return secret


def _read_secret(where, size):
    try:
        with open(where, "rb") as handle:
            secret = handle.read(size + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyRingError(f"{where}: cannot read ({exc.strerror})") from None
    if len(secret) != size:
        raise KeyRingError(f"{where}: expected exactly {size} bytes")
    return secret


def _check_entry(entry, where):
    if not isinstance(entry, dict) or not set(FIELDS) <= set(entry):
        raise KeyRingError(f"{where}: every key needs the fields {', '.join(FIELDS)}")
    kid = entry["kid"]
    key_path(where.parent, kid)
    if entry["alg"] not in algorithms.ALGORITHMS:
        valid = ", ".join(algorithms.ALGORITHMS)
        raise KeyRingError(f"{where}: key {kid}: alg must be one of {valid}")
    if entry["status"] not in STATUSES:
        raise KeyRingError(f"{where}: key {kid}: status must be one of {', '.join(STATUSES)}")
    for name in FIELDS[3:]:
        value = entry[name]
        nullable = name != "created_at"
        if not (_is_int(value) or (nullable and value is None)):
            raise KeyRingError(f"{where}: key {kid}: {name} must be unix seconds")
    if entry["status"] == "active" and entry["activated_at"] is None:
        raise KeyRingError(f"{where}: key {kid}: active key without activated_at")
    if entry["status"] == "retired" and entry["retired_at"] is None:
        raise KeyRingError(f"{where}: key {kid}: retired key without retired_at")
    checked = {name: entry[name] for name in FIELDS}
    jwk = entry.get("jwk")
    checked["jwk"] = None if jwk is None else algorithms.check_public_jwk(jwk, kid, entry["alg"], where)
    return checked


def _check_together(entries, where):
    kids = [entry["kid"] for entry in entries]
    if len(set(kids)) != len(kids):
        raise KeyRingError(f"{where}: a kid is listed twice")
    actives = [entry["alg"] for entry in entries if entry["status"] == "active"]
    for alg in sorted(set(actives)):
        if actives.count(alg) > 1:
            raise KeyRingError(f"{where}: more than one active {alg} key")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _signature(stat):
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _write_atomic(where, data):
    temp = where.parent / f".{where.name}.{secrets.token_hex(6)}.tmp"
    try:
        # Created 0600 from the start: a chmod afterwards would leave a window.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            stat = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(temp, where)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise KeyRingError(f"{where}: cannot write ({exc.strerror})") from None
    _fsync_dir(where.parent)
    return stat


def _fsync_dir(path):
    # Makes the rename itself durable; some filesystems refuse, which is harmless.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_private_keys(path, entries):
    """Return {kid: private key} of ``entries``, each read from its file and checked."""
    loaded = {}
    for entry in entries:
        kid = entry["kid"]
        where = key_path(path, kid)
        private_key = algorithms.load_private_key(read_key(path, kid), where)
        if algorithms.kid_of(private_key) != kid:
            raise KeyRingError(f"{where}: kid is not the key's RFC 7638 thumbprint")
        algorithms.check_key_matches_alg(private_key, entry["alg"], where)
        loaded[kid] = private_key
    return loaded


class FileStore:
    """The ring in a directory shared by every instance (``AUTHSVC_KEYS_DIR``)."""

    def __init__(self, path):
        self.path = path
        self.where = str(path)

    def __repr__(self):
        return f"FileStore({self.where!r})"

    def started(self):
        return self.path.is_dir()

    def signature(self):
        return manifest_signature(self.path)

    def read(self, *, missing_ok=False):
        """Return (entries with their public JWKs, signature); no private key is parsed
        unless the manifest predates the ``jwk`` member."""
        entries, signature = read_manifest(self.path, missing_ok=missing_ok)
        for entry in entries:
            # A stat, not a parse: a key file gone missing is found by `keys list` too.
            where = key_path(self.path, entry["kid"])
            if not where.is_file():
                raise KeyRingError(f"{where}: missing, but named in {MANIFEST_NAME}")
        legacy = [entry for entry in entries if entry["jwk"] is None]
        for kid, private_key in load_private_keys(self.path, legacy).items():
            entry = next(entry for entry in legacy if entry["kid"] == kid)
            entry["jwk"] = algorithms.public_jwk(private_key, kid, entry["alg"])
        return entries, signature

    def load_private(self, entries):
        return load_private_keys(self.path, entries)

    def mutate(self, change):
        """Run ``change(entries) -> (entries | None, result, {kid: private key})`` under the lock.

        New key files are written before the manifest names them, and dropped ones
        deleted only after it no longer does: a crash leaves an orphan, never a gap.
        """
        ensure_dir(self.path)
        with locked(self.path):
            # Re-read under the lock: another instance may have changed the ring a moment ago.
            entries, signature = self.read(missing_ok=True)
            new, result, private_keys = change(entries)
            if new is None:
                return result, entries, signature
            for kid, private_key in private_keys.items():
                write_key(self.path, kid, algorithms.dump_pem(private_key))
            signature = write_manifest(self.path, new)
            for kid in {entry["kid"] for entry in entries} - {entry["kid"] for entry in new}:
                delete_key(self.path, kid)
            return result, new, signature

    def session_secret(self, size):
        ensure_dir(self.path)
        return read_or_create_secret(self.path, size)

    def existing_secret(self, size):
        return _read_secret(self.path / SESSION_NAME, size) if self.path.is_dir() else None

    def put_secret(self, secret):
        ensure_dir(self.path)
        with locked(self.path):
            _write_atomic(self.path / SESSION_NAME, secret)

    def close(self):
        pass

"""The ring in the shared database (``AUTHSVC_KEY_STORE=database``): no host needs a shared disk.

Each private key is stored as PEM under AES-GCM with a key-encryption key (KEK)
from ``AUTHSVC_KEY_ENCRYPTION_KEY``, its kid as associated data, so a ciphertext
moved to another row does not decrypt. The session secret is stored the same
way. During a change of KEK two values are configured: new data is encrypted
with the first, and either decrypts; ``rewrap`` re-encrypts everything under the
first, after which the second can go. Public JWKs are stored in clear: listing,
the JWKS and verification never decrypt anything.

The rows themselves (``table``) come from ``authsvc.store.sql_signing_keys``;
this module never imports the store, the wiring passes the table in.
"""

import hashlib
import json
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import KeyRingError
from . import algorithms

SESSION_SECRET = "session"
_FORMAT = b"\x01"  # version byte of a stored ciphertext: 1 = AES-256-GCM, 12-byte nonce
_NONCE = 12


def kek_id(kek):
    """A short, non-reversible name of a KEK: which one encrypted a row, without revealing it."""
    return hashlib.sha256(b"authsvc key-encryption key\x00" + kek).hexdigest()[:16]


class KeyEncryption:
    """AES-256-GCM under the first KEK; decryption with any configured KEK."""

    def __init__(self, keks):
        if not keks:
            raise KeyRingError("AUTHSVC_KEY_ENCRYPTION_KEY: required with AUTHSVC_KEY_STORE=database")
        self._keks = [(kek_id(kek), AESGCM(kek)) for kek in keks]

    def __repr__(self):
        return f"KeyEncryption(ids={[name for name, _ in self._keks]})"

    @property
    def primary_id(self):
        return self._keks[0][0]

    def encrypt(self, plaintext, associated):
        """Return (ciphertext, kek_id) of ``plaintext`` bound to ``associated``."""
        name, aead = self._keks[0]
        nonce = os.urandom(_NONCE)
        return _FORMAT + nonce + aead.encrypt(nonce, plaintext, associated), name

    def decrypt(self, blob, associated, stored_id, what):
        """Return the plaintext; KeyRingError naming ``what`` (never any key material) if no KEK opens it."""
        if blob[:1] == _FORMAT and len(blob) > 1 + _NONCE:
            # The KEK the row names first; the others too, in case a row was copied by hand.
            for _, aead in sorted(self._keks, key=lambda item: item[0] != stored_id):
                try:
                    return aead.decrypt(blob[1 : 1 + _NONCE], blob[1 + _NONCE :], associated)
                except InvalidTag:
                    continue
        raise KeyRingError(
            f"{what}: cannot be decrypted with AUTHSVC_KEY_ENCRYPTION_KEY (it was encrypted under KEK {stored_id})"
        )


class DatabaseStore:
    """The key ring's backend over the ``signing_keys`` rows of the shared database."""

    where = "the database key ring"
    path = None

    def __init__(self, table, encryption):
        self.table = table
        self.encryption = encryption

    def __repr__(self):
        return "DatabaseStore()"

    def started(self):
        return True

    def signature(self):
        return self.table.version()

    def read(self, *, missing_ok=False):
        rows, version = self.table.read()
        return [self._entry(row) for row in rows], version

    def load_private(self, entries):
        blobs = self.table.read_private(entry["kid"] for entry in entries)
        loaded = {}
        for entry in entries:
            kid = entry["kid"]
            where = f"{self.where}: key {kid}"
            if kid not in blobs:
                raise KeyRingError(f"{where}: missing")
            blob, stored_id = blobs[kid]
            pem = self.encryption.decrypt(blob, kid.encode("ascii"), stored_id, where)
            private_key = algorithms.load_private_key(pem, where)
            if algorithms.kid_of(private_key) != kid:
                raise KeyRingError(f"{where}: kid is not the key's RFC 7638 thumbprint")
            algorithms.check_key_matches_alg(private_key, entry["alg"], where)
            loaded[kid] = private_key
        return loaded

    def mutate(self, change):
        """Run ``change(entries) -> (entries | None, result, {kid: private key})`` in one locked transaction."""
        with self.table.changing() as tx:
            entries = [self._entry(row) for row in tx.rows()]
            new, result, private_keys = change(entries)
            if new is None:
                return result, entries, tx.version
            current = {entry["kid"] for entry in entries}
            if private_keys and current:
                self._check_opens(tx)
            for entry in new:
                kid = entry["kid"]
                times = {name: entry[name] for name in ("status", "activated_at", "retired_at", "created_at")}
                if kid in private_keys:
                    blob, name = self._encrypt_key(kid, private_keys[kid])
                    times |= {"private_key": blob, "kek_id": name}
                if kid in current:
                    tx.update(kid, **times)
                elif kid in private_keys:
                    tx.insert({"kid": kid, "alg": entry["alg"], "public_jwk": json.dumps(entry["jwk"])} | times)
                else:
                    raise KeyRingError(f"{self.where}: key {kid}: no private key to store")
            for kid in current - {entry["kid"] for entry in new}:
                tx.delete(kid)
            return result, new, tx.version + (1 if tx.changed else 0)

    def session_secret(self, size):
        if self.table.secret(SESSION_SECRET) is None:
            blob, name = self.encryption.encrypt(os.urandom(size), _secret_aad(SESSION_SECRET))
            self.table.add_secret(SESSION_SECRET, blob, name)  # another instance may win; then its value stands
        return self.existing_secret(size)

    def existing_secret(self, size):
        found = self.table.secret(SESSION_SECRET)
        if found is None:
            return None
        where = f"{self.where}: session secret"
        secret = self.encryption.decrypt(found[0], _secret_aad(SESSION_SECRET), found[1], where)
        if len(secret) != size:
            raise KeyRingError(f"{where}: expected exactly {size} bytes")
        return secret

    def put_secret(self, secret):
        with self.table.changing() as tx:
            blob, name = self.encryption.encrypt(secret, _secret_aad(SESSION_SECRET))
            tx.put_secret(SESSION_SECRET, blob, name)

    def rewrap(self):
        """Re-encrypt every private key and secret not yet under the first KEK; return how many."""
        primary = self.encryption.primary_id
        done = 0
        with self.table.changing() as tx:
            for row in tx.rows(private=True):
                if row["kek_id"] == primary:
                    continue
                kid = row["kid"]
                where = f"{self.where}: key {kid}"
                pem = self.encryption.decrypt(bytes(row["private_key"]), kid.encode("ascii"), row["kek_id"], where)
                blob, name = self.encryption.encrypt(pem, kid.encode("ascii"))
                tx.update(kid, private_key=blob, kek_id=name)
                done += 1
            for row in tx.secrets():
                if row["kek_id"] == primary:
                    continue
                aad, where = _secret_aad(row["name"]), f"{self.where}: secret {row['name']}"
                value = self.encryption.decrypt(bytes(row["value"]), aad, row["kek_id"], where)
                tx.put_secret(row["name"], *self.encryption.encrypt(value, aad))
                done += 1
        return done

    def close(self):
        self.table.close()

    def _check_opens(self, tx):
        # A CLI run with a wrong KEK must not add keys the servers could not open next to
        # keys it could not open itself: one existing key must decrypt first.
        row = tx.rows(private=True)[0]
        where = f"{self.where}: key {row['kid']}"
        self.encryption.decrypt(bytes(row["private_key"]), row["kid"].encode("ascii"), row["kek_id"], where)

    def _encrypt_key(self, kid, private_key):
        return self.encryption.encrypt(algorithms.dump_pem(private_key), kid.encode("ascii"))

    def _entry(self, row):
        kid, alg = row["kid"], row["alg"]
        where = self.where
        if not isinstance(kid, str) or not algorithms.KID_PATTERN.fullmatch(kid):
            raise KeyRingError(f"{where}: kid {kid!r:.60} is not an RFC 7638 thumbprint")
        if alg not in algorithms.ALGORITHMS or row["status"] not in ("next", "active", "retired"):
            raise KeyRingError(f"{where}: key {kid}: unknown alg or status")
        try:
            jwk = json.loads(row["public_jwk"])
        except ValueError:
            raise KeyRingError(f"{where}: key {kid}: public JWK is not JSON") from None
        entry = {name: row[name] for name in ("kid", "alg", "status", "created_at", "activated_at", "retired_at")}
        entry["jwk"] = algorithms.check_public_jwk(jwk, kid, alg, where)
        return entry


def _secret_aad(name):
    return b"secret:" + name.encode("ascii")

"""Rows of the database key ring (``AUTHSVC_KEY_STORE=database``): keys, secrets, a version.

This module stores bytes and never sees a key in clear: encryption, key formats and
the ring's rules live in ``authsvc.keyring.database``. Every change runs in one
transaction that holds the ring's lock (the ``keyring_version`` row, FOR UPDATE on
PostgreSQL; BEGIN IMMEDIATE on SQLite) and bumps that version, so concurrent CLI
runs and cron jobs on several hosts serialise, and instances polling the version
see each change exactly once.
"""

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

from ..errors import StoreUnavailable
from .schema import keyring_secrets
from .schema import signing_keys
from .schema import store_meta
from .sql_base import UPGRADE_HINT
from .sql_base import create_engine
from .sql_base import reading
from .sql_base import snapshot
from .sql_base import upsert
from .sql_base import writing

VERSION_KEY = "keyring_version"
# Everything but the ciphertext: what listing and serving the public side need.
PUBLIC_COLUMNS = ("kid", "alg", "status", "created_at", "activated_at", "retired_at", "public_jwk", "kek_id")
_version = sa.select(store_meta.c.value).where(store_meta.c.key == VERSION_KEY)


class SigningKeyTable:
    """The ``signing_keys`` and ``keyring_secrets`` tables of one database."""

    def __init__(self, url: str):
        self._engine = create_engine(url)

    def close(self) -> None:
        self._engine.dispose()

    def version(self) -> int:
        """The ring's change counter: one cheap indexed read, polled by every instance."""
        with reading(self._engine) as conn:
            return _checked(conn.execute(_version).scalar())

    def read(self) -> tuple[list[dict], int]:
        """Every key's public columns, and the version they belong to (one snapshot)."""
        with snapshot(self._engine) as conn:
            version = _checked(conn.execute(_version).scalar())
            columns = [signing_keys.c[name] for name in PUBLIC_COLUMNS]
            rows = conn.execute(sa.select(*columns).order_by(signing_keys.c.created_at, signing_keys.c.kid))
            return [dict(row._mapping) for row in rows], version

    def read_private(self, kids) -> dict:
        """``{kid: (ciphertext, kek_id)}`` of the named keys."""
        query = sa.select(signing_keys.c.kid, signing_keys.c.private_key, signing_keys.c.kek_id).where(
            signing_keys.c.kid.in_(list(kids))
        )
        with reading(self._engine) as conn:
            return {row.kid: (bytes(row.private_key), row.kek_id) for row in conn.execute(query)}

    @contextlib.contextmanager
    def changing(self) -> Iterator["Change"]:
        """Yield a ``Change`` inside one locked transaction; the version moves if anything changed."""
        with writing(self._engine) as conn:
            lock = _version.with_for_update() if conn.dialect.name == "postgresql" else _version
            version = _checked(conn.execute(lock).scalar())
            change = Change(conn, version)
            yield change
            if change.changed:
                conn.execute(sa.update(store_meta).where(store_meta.c.key == VERSION_KEY).values(value=version + 1))

    def secret(self, name: str) -> tuple[bytes, str] | None:
        with reading(self._engine) as conn:
            row = conn.execute(
                sa.select(keyring_secrets.c.value, keyring_secrets.c.kek_id).where(keyring_secrets.c.name == name)
            ).first()
        return None if row is None else (bytes(row.value), row.kek_id)

    def add_secret(self, name: str, value: bytes, kek_id: str) -> None:
        """Store a secret unless one of that name exists (the first writer wins)."""
        with writing(self._engine) as conn:
            insert = upsert(conn, keyring_secrets).values(name=name, value=value, kek_id=kek_id)
            conn.execute(insert.on_conflict_do_nothing(index_elements=[keyring_secrets.c.name]))


class Change:
    """What one locked transaction may do to the ring's rows."""

    def __init__(self, conn: sa.Connection, version: int):
        self._conn = conn
        self.version = version
        self.changed = False

    def rows(self, *, private: bool = False) -> list[dict]:
        columns = PUBLIC_COLUMNS + (("private_key",) if private else ())
        query = sa.select(*(signing_keys.c[name] for name in columns)).order_by(signing_keys.c.created_at)
        return [dict(row._mapping) for row in self._conn.execute(query)]

    def insert(self, row: dict) -> None:
        self._conn.execute(sa.insert(signing_keys).values(**row))
        self.changed = True

    def update(self, kid: str, **values) -> None:
        self._conn.execute(sa.update(signing_keys).where(signing_keys.c.kid == kid).values(**values))
        self.changed = True

    def delete(self, kid: str) -> None:
        self._conn.execute(sa.delete(signing_keys).where(signing_keys.c.kid == kid))
        self.changed = True

    def secrets(self) -> list[dict]:
        return [dict(row._mapping) for row in self._conn.execute(sa.select(keyring_secrets))]

    def put_secret(self, name: str, value: bytes, kek_id: str) -> None:
        self._conn.execute(sa.delete(keyring_secrets).where(keyring_secrets.c.name == name))
        self._conn.execute(sa.insert(keyring_secrets).values(name=name, value=value, kek_id=kek_id))
        self.changed = True


def _checked(version) -> int:
    if version is None:
        # The tables exist only from step 6 on; an older schema has no version row.
        raise StoreUnavailable(f"database unavailable: {UPGRADE_HINT}")
    return int(version)

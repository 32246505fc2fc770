"""Numbered schema steps, and ``upgrade(engine)`` that applies the missing ones.

``schema_migrations`` records every step applied. Each step runs in its own
transaction, under a lock every authsvc process takes (pg_advisory_xact_lock
on PostgreSQL, BEGIN IMMEDIATE on SQLite), and re-checks that it is still
missing once it holds the lock, so instances upgrading at once apply every
step exactly once. DDL is transactional on both backends: a failing step
leaves the database at the previous version.

A released step is never edited. A schema change is a new step at the end
of STEPS that alters what exists, together with the matching change in
``schema.py``. The day a table created by step 1 changes, step 1 must get a
frozen copy of that table's version-1 definition, so that a fresh database
still walks the same path as an old one.
"""

import time
from collections.abc import Callable

import sqlalchemy as sa

from . import schema
from .sql_base import writing

# Any fixed 64-bit number; every authsvc process must use the same one.
ADVISORY_LOCK_ID = 0x6175_7468_7376_63  # b"authsvc"


def _step_1(conn: sa.Connection) -> None:
    tables = [
        schema.store_meta,
        schema.users,
        schema.clients,
        schema.authorization_codes,
        schema.refresh_tokens,
        schema.consents,
        schema.revocations,
        schema.counters,
    ]
    schema.metadata.create_all(conn, tables=tables, checkfirst=False)
    conn.execute(
        sa.insert(schema.store_meta),
        [
            # Highest revocation version ever assigned.
            {"key": "revocation_version", "value": 0},
            # Highest version of a purged revocation: a poller behind it needs a full list.
            {"key": "revocation_purged", "value": 0},
        ],
    )


STEPS: tuple[tuple[int, str, Callable[[sa.Connection], None]], ...] = ((1, "create initial tables", _step_1),)


def upgrade(engine: sa.Engine, *, clock: Callable[[], float] = time.time) -> list[str]:
    """Apply the missing steps in order; return the names of those applied."""
    with writing(engine) as conn:
        _lock(conn)
        schema.schema_migrations.create(conn, checkfirst=True)
    applied = []
    for version, name, step in STEPS:
        with writing(engine) as conn:
            _lock(conn)
            if _is_applied(conn, version):
                continue
            step(conn)
            conn.execute(sa.insert(schema.schema_migrations).values(version=version, name=name, applied_at=clock()))
        applied.append(name)
    return applied


def current_version(conn: sa.Connection) -> int:
    """Return the highest step applied, 0 for an empty database."""
    if not sa.inspect(conn).has_table(schema.schema_migrations.name):
        return 0
    query = sa.select(sa.func.max(schema.schema_migrations.c.version))
    return conn.execute(query).scalar() or 0


def _lock(conn: sa.Connection) -> None:
    # SQLite is already exclusive: writing() opened the transaction with BEGIN IMMEDIATE.
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(ADVISORY_LOCK_ID)))


def _is_applied(conn: sa.Connection, version: int) -> bool:
    table = schema.schema_migrations
    query = sa.select(table.c.version).where(table.c.version == version)
    return conn.execute(query).first() is not None

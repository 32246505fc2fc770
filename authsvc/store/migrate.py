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


def _v1_tables() -> sa.MetaData:
    """The tables step 1 made that later steps changed, frozen as version 1 defined them."""
    v1 = sa.MetaData(naming_convention=schema.metadata.naming_convention)

    def client_fk() -> sa.ForeignKey:
        return sa.ForeignKey("clients.client_id", ondelete="CASCADE")

    sa.Table(
        "clients",
        v1,
        sa.Column("client_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.Text),
        sa.Column("redirect_uris", sa.Text, nullable=False),
        sa.Column("post_logout_redirect_uris", sa.Text, nullable=False),
        sa.Column("grant_types", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("token_endpoint_auth_method", sa.Text, nullable=False),
        sa.Column("first_party", sa.Boolean, nullable=False),
        sa.Column("id_token_signed_response_alg", sa.Text, nullable=False),
        sa.Column("resources", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    sa.Table(
        "authorization_codes",
        v1,
        sa.Column("code_hash", sa.Text, primary_key=True),
        sa.Column("client_id", sa.Text, client_fk(), nullable=False, index=True),
        sa.Column("sub", sa.Text, nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("auth_time", sa.Double, nullable=False),
        sa.Column("sid", sa.Text),
        sa.Column("nonce", sa.Text),
        sa.Column("code_challenge", sa.Text),
        sa.Column("code_challenge_method", sa.Text),
        sa.Column("resource", sa.Text),
        sa.Column("used_at", sa.Double),
        sa.Column("issued_jti", sa.Text),
        sa.Column("issued_exp", sa.Double),
        sa.Column("issued_family", sa.Text),
    )
    sa.Table(
        "refresh_tokens",
        v1,
        sa.Column("token_hash", sa.Text, primary_key=True),
        sa.Column("family_id", sa.Text, nullable=False, index=True),
        sa.Column("client_id", sa.Text, client_fk(), nullable=False, index=True),
        sa.Column("sub", sa.Text, nullable=False, index=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("issued_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("auth_time", sa.Double, nullable=False),
        sa.Column("sid", sa.Text, index=True),
        sa.Column("resource", sa.Text),
        sa.Column("access_jti", sa.Text),
        sa.Column("access_exp", sa.Double),
        sa.Column("spent_at", sa.Double),
        sa.Column("revoked_at", sa.Double),
        sa.Column("successor_blob", sa.LargeBinary),
    )
    sa.Table(
        "consents",
        v1,
        sa.Column("sub", sa.Text, primary_key=True),
        sa.Column("client_id", sa.Text, client_fk(), primary_key=True, index=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("granted_at", sa.Double, nullable=False),
    )
    sa.Table(
        "counters",
        v1,
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("window_start", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    return v1


def _step_1(conn: sa.Connection) -> None:
    v1 = _v1_tables()
    schema.metadata.create_all(conn, tables=[schema.store_meta, schema.users], checkfirst=False)
    v1.create_all(conn, tables=[v1.tables["clients"]], checkfirst=False)
    v1.create_all(conn, tables=[v1.tables["authorization_codes"]], checkfirst=False)
    v1.create_all(conn, tables=[v1.tables["refresh_tokens"], v1.tables["consents"]], checkfirst=False)
    schema.metadata.create_all(conn, tables=[schema.revocations], checkfirst=False)
    v1.create_all(conn, tables=[v1.tables["counters"]], checkfirst=False)
    conn.execute(
        sa.insert(schema.store_meta),
        [
            # Highest revocation version ever assigned.
            {"key": "revocation_version", "value": 0},
            # Highest version of a purged revocation: a poller behind it needs a full list.
            {"key": "revocation_purged", "value": 0},
        ],
    )


def _step_2(conn: sa.Connection) -> None:
    # Hardening: default audiences per client, CORS origins, exact redirect URIs
    # per consent, and the successor of a spent refresh token.
    for statement in (
        "ALTER TABLE clients RENAME COLUMN resources TO audiences",
        "ALTER TABLE clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE consents ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE refresh_tokens ADD COLUMN successor_hash TEXT",
    ):
        conn.exec_driver_sql(statement)


def _step_3(conn: sa.Connection) -> None:
    # Fixed-window counts become moving-window entries. The old counts cannot
    # be converted (they carry no times) and live for one window at most:
    # the table is replaced, not altered.
    conn.exec_driver_sql("DROP TABLE counters")
    schema.metadata.create_all(conn, tables=[schema.counters], checkfirst=False)


def _step_4(conn: sa.Connection) -> None:
    # DPoP (RFC 9449): bound clients and refresh tokens, and one-time proof identifiers.
    conn.exec_driver_sql("ALTER TABLE clients ADD COLUMN dpop_bound BOOLEAN NOT NULL DEFAULT false")
    conn.exec_driver_sql("ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT")
    schema.metadata.create_all(conn, tables=[schema.used_jtis], checkfirst=False)


def _step_5(conn: sa.Connection) -> None:
    # private_key_jwt, PAR, the device grant, back-channel logout and the account page.
    for statement in (
        "ALTER TABLE clients ADD COLUMN jwks TEXT",
        "ALTER TABLE clients ADD COLUMN jwks_uri TEXT",
        "ALTER TABLE clients ADD COLUMN require_par BOOLEAN NOT NULL DEFAULT false",
        "ALTER TABLE clients ADD COLUMN backchannel_logout_uri TEXT",
    ):
        conn.exec_driver_sql(statement)
    tables = [
        schema.pushed_requests,
        schema.device_codes,
        schema.sessions,
        schema.session_clients,
        schema.logout_outbox,
    ]
    schema.metadata.create_all(conn, tables=tables, checkfirst=False)


def _step_6(conn: sa.Connection) -> None:
    # The key ring in the database (AUTHSVC_KEY_STORE=database), and its change counter.
    schema.metadata.create_all(conn, tables=[schema.signing_keys, schema.keyring_secrets], checkfirst=False)
    conn.execute(sa.insert(schema.store_meta).values(key="keyring_version", value=0))


def _step_7(conn: sa.Connection) -> None:
    # RFC 9449 §10: an authorization code bound to a DPoP key (dpop_jkt, or a proof sent to /par).
    conn.exec_driver_sql("ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT")


STEPS: tuple[tuple[int, str, Callable[[sa.Connection], None]], ...] = (
    (1, "create initial tables", _step_1),
    (2, "client audiences and origins, consent redirect URIs, refresh successors", _step_2),
    (3, "moving-window rate-limit entries", _step_3),
    (4, "DPoP-bound clients and refresh tokens, one-time identifiers", _step_4),
    (5, "client keys, PAR, device codes, sessions, back-channel logout outbox", _step_5),
    (6, "the key ring in the database", _step_6),
    (7, "authorization codes bound to a DPoP key", _step_7),
)


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

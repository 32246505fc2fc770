"""Engine set-up, transactions and error translation shared by the sql_* modules.

Every database call goes through ``reading``, ``snapshot`` or ``writing``, so
that any connection trouble surfaces as ``StoreUnavailable`` (an HTTP 503
upstream) and never as a raw driver error (a 500).
"""

import contextlib
import dataclasses
import functools
import logging
import os
import pathlib
import sqlite3
import stat
import time
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy import pool
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from ..errors import StoreUnavailable

# A slow or dead database must fail well inside gunicorn's 30 s worker timeout.
POOL_TIMEOUT = 5
CONNECT_TIMEOUT = 3
STATEMENT_TIMEOUT_MS = 5000
TCP_LIVENESS = {
    "tcp_user_timeout": STATEMENT_TIMEOUT_MS + 1000,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
}
SQLITE_BUSY_TIMEOUT_MS = 5000

UPGRADE_HINT = "schema missing or outdated: run `python -m authsvc db upgrade`"

# Custom execution option read by _sqlite_begin.
_WRITE = "authsvc_write"


def create_engine(url: str) -> sa.Engine:
    """Build the engine for a sqlite:// or postgresql:// URL with our pool and timeouts."""
    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError as error:
        raise ValueError("database URL is not a valid SQLAlchemy URL") from error
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return _postgres_engine(parsed)
    raise ValueError(f"unsupported database backend {backend!r}: use sqlite or postgresql")


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        # One shared connection: an in-memory database exists once per
        # connection. Good for single-threaded tests only.
        engine = sa.create_engine(url, poolclass=pool.StaticPool, connect_args={"check_same_thread": False})
    else:
        _make_private_dirs(pathlib.Path(database).parent)
        engine = sa.create_engine(url, pool_size=5, max_overflow=10, pool_timeout=POOL_TIMEOUT)
        sa.event.listen(engine, "do_connect", functools.partial(_create_private_file, database))
        sa.event.listen(engine, "connect", functools.partial(_tighten_file_modes, database))
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _make_private_dirs(path: pathlib.Path) -> None:
    """Create ``path`` and any missing parent as 0700: the database holds password hashes."""
    missing = []
    while not os.path.lexists(path) and path.parent != path:
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
            os.chmod(directory, 0o700)  # exactly, whatever the umask
        except FileExistsError:
            continue  # another process made it a moment ago
        except OSError as error:
            raise StoreUnavailable(f"database unavailable: cannot create {directory} ({error.strerror})") from None


def _create_private_file(database: str, *_args) -> None:
    # SQLite would create the file 0644 (less the umask), and it gives the -wal and
    # -shm files the database's mode: a file made 0600 first keeps all three private.
    # Any other failure is SQLite's to report, as the StoreUnavailable that guard() makes of it.
    with contextlib.suppress(OSError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _tighten_file_modes(database: str, *_args) -> None:
    # A database made by an earlier version, or by sqlite3 by hand, may be readable by
    # everyone. Only files we own can change mode; others stay as their owner set them.
    for name in (database, f"{database}-wal", f"{database}-shm", f"{database}-journal"):
        with contextlib.suppress(OSError):
            mode = stat.S_IMODE(os.stat(name).st_mode)
            if mode & 0o077:
                os.chmod(name, mode & 0o700)
                logging.getLogger(__name__).warning("%s was readable by other users; now mode %o", name, mode & 0o700)


def _sqlite_connect(dbapi_connection, _record) -> None:
    # We emit BEGIN ourselves (_sqlite_begin); sqlite3's implicit BEGIN is
    # deferred and only precedes DML, which breaks read-then-write atomicity.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # busy_timeout first: switching to WAL needs a lock another process may hold.
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys = ON")
    _use_wal(cursor)
    cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    # WAL lets readers run beside the writer. The mode is stored in the file,
    # but switching to it ignores busy_timeout: a new database opened by two
    # processes at once would fail with "database is locked", so retry.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            # Asking first spares the lock on every later connection. An
            # in-memory database answers "memory" and stays so; that is fine.
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(conn: sa.Connection) -> None:
    # A write takes the write lock up front; a deferred transaction that
    # reads then writes can fail with SQLITE_BUSY without waiting at all.
    if conn.get_execution_options().get(_WRITE):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def _postgres_engine(url: sa.URL) -> sa.Engine:
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    options = url.query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    if "statement_timeout" not in options:
        options = f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
    # connect_args replace URL query values, so options from the URL
    # (such as a search_path) are merged above rather than lost.
    connect_args = {"options": options}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    if "application_name" not in url.query:
        connect_args["application_name"] = "authsvc"
    # statement_timeout is enforced by the server, which cannot answer across a
    # network cut: without these a request on a host cut off from PostgreSQL
    # would wait for TCP's own retransmission limit (many minutes). Unacknowledged
    # data or a silent peer now ends the connection within seconds (a 503).
    for name, value in TCP_LIVENESS.items():
        connect_args.setdefault(name, value)
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=POOL_TIMEOUT,
        connect_args=connect_args,
    )


@contextlib.contextmanager
def guard(engine: sa.Engine) -> Iterator[None]:
    """Turn connection, timeout and missing-schema errors into StoreUnavailable."""
    try:
        yield
    except exc.TimeoutError as error:
        raise StoreUnavailable(f"database unavailable: {_reason(error, engine)}") from error
    except exc.DBAPIError as error:
        if _missing_schema(error):
            raise StoreUnavailable(f"database unavailable: {UPGRADE_HINT}") from error
        if isinstance(error, exc.OperationalError | exc.InterfaceError) or error.connection_invalidated:
            raise StoreUnavailable(f"database unavailable: {_reason(error, engine)}") from error
        raise


def _missing_schema(error: exc.DBAPIError) -> bool:
    if getattr(error.orig, "sqlstate", None) == "42P01":  # PostgreSQL undefined_table
        return True
    return "no such table" in str(error.orig)


def _reason(error: Exception, engine: sa.Engine) -> str:
    """First line of the driver's message, without SQLAlchemy's footer or any password."""
    text = str(getattr(error, "orig", None) or error)
    text = text.split("(Background on this error")[0].strip()
    text = (text.splitlines() or ["unknown error"])[0].strip()
    password = engine.url.password
    if password:
        text = text.replace(str(password), "***")
    return text[:200] or type(error).__name__


@contextlib.contextmanager
def reading(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Yield a connection for reads; it is rolled back on exit."""
    with guard(engine), engine.connect() as conn:
        yield conn


@contextlib.contextmanager
def snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Yield a connection whose reads all see one consistent snapshot."""
    with guard(engine), engine.connect() as conn:
        # SQLite's deferred BEGIN is a snapshot already (WAL); PostgreSQL's
        # default READ COMMITTED takes a new snapshot per statement.
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        yield conn


@contextlib.contextmanager
def writing(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Yield a connection inside one transaction, committed on normal exit."""
    with guard(engine), engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


def upsert(conn: sa.Connection, table: sa.Table):
    """Return the dialect's INSERT, the one that has on_conflict_do_update."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_foreign_key_error(error: exc.IntegrityError) -> bool:
    """Tell a missing parent row apart from a duplicate key."""
    if getattr(error.orig, "sqlstate", None) == "23503":  # PostgreSQL foreign_key_violation
        return True
    return "FOREIGN KEY" in str(error.orig)


def check_text(**values: object) -> None:
    """Raise ValueError when a string (or a string in a tuple) holds a NUL byte."""
    # PostgreSQL refuses NUL in TEXT with a driver error; callers map
    # ValueError to 400, so a stray %00 never becomes a 500.
    for name, value in values.items():
        items = value if isinstance(value, tuple | list) else (value,)
        if any(isinstance(item, str) and "\x00" in item for item in items):
            raise ValueError(f"NUL byte in {name}")


def check_record(record: object) -> None:
    """Apply check_text to every field of a record."""
    check_text(**{f.name: getattr(record, f.name) for f in dataclasses.fields(record)})


def row_values(record: object) -> dict:
    """Return a record's fields as a dict of column values."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def to_record(cls: type, row: sa.Row, **overrides: object):
    """Build a record of ``cls`` from the matching columns of a row."""
    mapping = row._mapping
    values = {f.name: mapping[f.name] for f in dataclasses.fields(cls)}
    for name in _float_fields(cls):
        # SQLite's RETURNING hands back 5.0 as 5; records promise floats.
        if values[name] is not None:
            values[name] = float(values[name])
    values.update(overrides)
    return cls(**values)


@functools.cache
def _float_fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if f.type in (float, float | None))

"""Databases for tests: a temporary SQLite file, and a fresh PostgreSQL schema per test.

Use the ``store_url`` fixture to run a test on every backend::

    from tests.dbs import store_url  # noqa: F401  (pytest finds fixtures by name)

PostgreSQL comes from AUTHSVC_TEST_DATABASE_URL, or the local default below.
When it cannot be reached the PostgreSQL tests are skipped with the reason,
except under CI=true, where they fail: CI must never pass by skipping.
"""

import atexit
import os
import secrets
import warnings

import pytest
import sqlalchemy as sa
from sqlalchemy import pool

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Why PostgreSQL was unreachable, once known, so later tests skip at once
# instead of each waiting for a connect timeout.
_unreachable: dict[str, str] = {}


def database_urls() -> list:
    """Return the backend params that ``store_url`` resolves to URLs."""
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql"),
    ]


@pytest.fixture(params=database_urls())
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A URL to an empty database: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'authsvc.db'}"
    return postgres_url_or_skip(request)


@pytest.fixture(name="store")
def upgraded_store(store_url: str):
    """A store at the newest schema on every backend; import it into a module to run its tests on both."""
    from authsvc.store import open_store

    store = open_store(store_url)
    store.upgrade()
    yield store
    store.close()


def postgres_url_or_skip(request: pytest.FixtureRequest | None = None) -> str:
    """Create an isolated schema and return a URL whose search_path is that schema.

    The schema is dropped at the end of the test when ``request`` is given,
    otherwise when the test process exits.
    """
    base = sa.make_url(os.environ.get("AUTHSVC_TEST_DATABASE_URL") or DEFAULT_POSTGRES_URL)
    shown = base.render_as_string(hide_password=True)
    if shown in _unreachable:
        _give_up(shown, _unreachable[shown])
    schema = f"t_{secrets.token_hex(6)}"
    try:
        _admin(base, f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as error:
        reason = str(error.orig).splitlines()[0] if error.orig else type(error).__name__
        _unreachable[shown] = reason
        _give_up(shown, reason)
    drop = _dropper(base, schema)
    if request is not None:
        request.addfinalizer(drop)
    else:
        atexit.register(drop)
    options = base.query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    url = base.update_query_dict({"options": f"{options} -csearch_path={schema}".strip()})
    return url.render_as_string(hide_password=False)


def _give_up(shown: str, reason: str) -> None:
    message = f"PostgreSQL not reachable at {shown} ({reason}): start it or set AUTHSVC_TEST_DATABASE_URL"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _admin(base: sa.URL, statement: str) -> None:
    engine = sa.create_engine(base, poolclass=pool.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.begin() as conn:
            # Never hang a teardown behind a connection a test left open.
            conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _dropper(base: sa.URL, schema: str):
    def drop() -> None:
        try:
            _admin(base, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        except sa.exc.DBAPIError as error:
            warnings.warn(f"could not drop test schema {schema}: {error.orig}", stacklevel=1)

    return drop

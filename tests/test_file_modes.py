"""The SQLite database holds password hashes: only its owner may read it.

Whatever the umask, a directory authsvc creates for the database is 0700 and the
database, its -wal and its -shm files are 0600; a database left readable by others
(an earlier version, sqlite3 by hand) is tightened when authsvc opens it.
"""

import contextlib
import os
import sqlite3
import stat

import pytest

from authsvc import accounts
from authsvc.store import open_store
from tests.oidc import fast_hashing  # noqa: F401


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@contextlib.contextmanager
def umask(value):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def write_a_user(fast_hashing):  # noqa: F811
    def write(store):
        store.create_user(accounts.new_user("alice", "correct horse battery", "alice@example.com", 0.0))

    return write


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o000], ids=["umask-022", "umask-002", "umask-000"])
def test_a_new_database_and_its_directory_are_private(tmp_path, mask, write_a_user):
    database = tmp_path / "instance" / "sub" / "authsvc.db"
    with umask(mask):
        store = open_store(f"sqlite:///{database}")
        try:
            store.upgrade()
            write_a_user(store)
            # An open connection keeps the -wal and -shm files in place to look at.
            with store._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
                assert [mode(p) for p in (tmp_path / "instance", database.parent)] == [0o700, 0o700]
                files = [database, f"{database}-wal", f"{database}-shm"]
                assert {name: mode(name) for name in map(str, files)} == {name: 0o600 for name in map(str, files)}
        finally:
            store.close()


def test_a_database_readable_by_others_is_tightened_on_open(tmp_path, write_a_user):
    database = tmp_path / "authsvc.db"
    sqlite3.connect(database).close()
    os.chmod(database, 0o644)
    store = open_store(f"sqlite:///{database}")
    try:
        store.upgrade()
        write_a_user(store)
        with store._engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
            for name in (database, f"{database}-wal", f"{database}-shm"):
                assert mode(name) == 0o600, name
    finally:
        store.close()


def test_an_existing_directory_keeps_its_mode(tmp_path):
    # The operator's directory (/var/lib/…) is theirs; only what authsvc creates is made 0700.
    os.chmod(tmp_path, 0o755)
    store = open_store(f"sqlite:///{tmp_path / 'authsvc.db'}")
    try:
        store.upgrade()
    finally:
        store.close()
    assert mode(tmp_path) == 0o755
    assert mode(tmp_path / "authsvc.db") == 0o600


def test_ping_still_refuses_a_missing_database_file(tmp_path):
    # Making the file 0600 ahead of SQLite must not create it where the real one went missing.
    from authsvc.errors import StoreUnavailable

    store = open_store(f"sqlite:///{tmp_path / 'gone.db'}")
    try:
        with pytest.raises(StoreUnavailable, match="does not exist"):
            store.ping()
    finally:
        store.close()
    assert not (tmp_path / "gone.db").exists()

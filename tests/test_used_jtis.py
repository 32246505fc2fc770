"""One-time identifiers in the store (RFC 9449 §11.1: a DPoP proof jti is accepted once).

Runs on SQLite and PostgreSQL: every instance shares the table, so a replay to another
instance is refused as surely as one to the same instance.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from authsvc.store import open_store
from tests.dbs import store_url  # noqa: F401  (fixture)

NOW = 1_700_000_000.0


@pytest.fixture
def store(store_url):  # noqa: F811
    store = open_store(store_url)
    store.upgrade()
    yield store
    store.close()


def test_a_key_is_used_once_until_it_expires(store):
    assert store.use_once("dpop:a", NOW + 60, NOW) is True
    assert store.use_once("dpop:a", NOW + 60, NOW + 59) is False
    assert store.use_once("dpop:b", NOW + 60, NOW) is True
    # Past its window the old row no longer blocks the key.
    assert store.use_once("dpop:a", NOW + 200, NOW + 60) is True
    assert store.use_once("dpop:a", NOW + 200, NOW + 61) is False


def test_two_stores_on_one_database_share_the_keys(store, store_url):  # noqa: F811
    other = open_store(store_url)
    try:
        assert store.use_once("dpop:shared", NOW + 60, NOW) is True
        assert other.use_once("dpop:shared", NOW + 60, NOW) is False
    finally:
        other.close()


def test_concurrent_uses_have_exactly_one_winner(store):
    barrier = threading.Barrier(8, timeout=10)

    def use(_):
        barrier.wait()
        return store.use_once("dpop:race", NOW + 60, NOW)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(use, range(8)))
    assert results.count(True) == 1


def test_purge_expired_drops_used_keys_past_their_window(store):
    store.use_once("dpop:old", NOW + 10, NOW)
    store.use_once("dpop:new", NOW + 100, NOW)
    assert store.purge_expired(NOW + 50) >= 1
    # The old key is gone (usable again), the live one still blocks.
    assert store.use_once("dpop:old", NOW + 110, NOW + 50) is True
    assert store.use_once("dpop:new", NOW + 110, NOW + 50) is False


@pytest.mark.parametrize("key", ["", "x" * 513, "nul\x00byte"])
def test_bad_keys_are_value_errors(store, key):
    with pytest.raises(ValueError):
        store.use_once(key, NOW + 60, NOW)

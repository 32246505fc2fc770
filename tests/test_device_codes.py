"""The store's device grants (RFC 8628) on every backend: each step is atomic, so
instances racing on one grant agree (one decision, one consumption).
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from authsvc import accounts
from authsvc.errors import AlreadyExists
from authsvc.errors import NotFound
from authsvc.store.records import DeviceCode
from tests.dbs import store_url  # noqa: F401
from tests.dbs import upgraded_store  # noqa: F401  (the "store" fixture, on every backend)

NOW = 1_000_000.0
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def client_id(store):
    client, _ = accounts.new_client("TV", now=NOW, grant_types=(DEVICE,), public=True)
    store.create_client(client)
    return client.client_id


def grant(client_id, user_code="BCDFGHJK", device_hash="h1", **fields) -> DeviceCode:
    return DeviceCode(
        device_code_hash=device_hash,
        user_code=user_code,
        client_id=client_id,
        scope="openid",
        expires_at=NOW + 600,
        interval=5,
        **fields,
    )


def approve(store, user_code="BCDFGHJK", now=NOW, approved=True):
    return store.decide_device_code(user_code, now, approved=approved, sub="u_1", auth_time=NOW, sid="s1")


def test_create_and_get_by_user_code(store, client_id):
    store.create_device_code(grant(client_id))
    record = store.get_device_code_by_user_code("BCDFGHJK")
    assert record.status == "pending" and record.interval == 5 and record.last_polled_at is None
    with pytest.raises(NotFound):
        store.get_device_code_by_user_code("ZZZZZZZZ")


def test_a_taken_user_code_or_unknown_client_is_refused(store, client_id):
    store.create_device_code(grant(client_id))
    with pytest.raises(AlreadyExists):
        store.create_device_code(grant(client_id, device_hash="h2"))
    with pytest.raises(NotFound):
        store.create_device_code(grant("c_nobody", user_code="CCCCCCCC", device_hash="h3"))


def test_only_the_first_decision_counts_and_only_while_pending_and_unexpired(store, client_id):
    store.create_device_code(grant(client_id))
    store.create_device_code(grant(client_id, user_code="CCCCCCCC", device_hash="h2"))
    decided = approve(store)
    assert (decided.status, decided.sub, decided.sid) == ("approved", "u_1", "s1")
    assert approve(store, approved=False) is None
    assert store.get_device_code_by_user_code("BCDFGHJK").status == "approved"
    assert approve(store, "CCCCCCCC", now=NOW + 600) is None  # expired
    assert approve(store, "DDDDDDDD") is None  # unknown


def test_3_5_poll_records_and_slows_down(store, client_id):
    store.create_device_code(grant(client_id))
    record, early = store.poll_device_code("h1", client_id, NOW)
    assert not early and record.last_polled_at == NOW
    record, early = store.poll_device_code("h1", client_id, NOW)  # the same instant
    assert early and record.interval == 10 and record.last_polled_at == NOW
    record, early = store.poll_device_code("h1", client_id, NOW + 10)
    assert not early and record.interval == 10 and record.last_polled_at == NOW + 10


def test_3_5_polls_of_another_client_or_an_expired_grant_change_nothing(store, client_id):
    store.create_device_code(grant(client_id))
    assert store.poll_device_code("h1", "c_other", NOW) == (None, False)
    assert store.poll_device_code("nope", client_id, NOW) == (None, False)
    record, early = store.poll_device_code("h1", client_id, NOW + 600)
    assert record.status == "pending" and not early and record.last_polled_at is None


def test_consume_once(store, client_id):
    store.create_device_code(grant(client_id))
    assert store.consume_device_code("h1", NOW) is None  # still pending
    approve(store)
    assert store.consume_device_code("h1", NOW).status == "consumed"
    assert store.consume_device_code("h1", NOW) is None


def test_two_polls_racing_get_one_consumption(store, client_id):
    store.create_device_code(grant(client_id))
    approve(store)
    barrier = threading.Barrier(8)

    def consume(_):
        barrier.wait()
        return store.consume_device_code("h1", NOW)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(consume, range(8)))
    assert sum(r is not None for r in results) == 1


def test_two_browsers_racing_get_one_decision(store, client_id):
    store.create_device_code(grant(client_id))
    barrier = threading.Barrier(6)

    def decide(i):
        barrier.wait()
        return approve(store, approved=i % 2 == 0)

    with ThreadPoolExecutor(6) as pool:
        results = [r for r in pool.map(decide, range(6)) if r is not None]
    assert len(results) == 1
    assert store.get_device_code_by_user_code("BCDFGHJK").status == results[0].status


def test_purge_keeps_expired_grants_for_an_hour(store, client_id):
    store.create_device_code(grant(client_id))
    store.purge_expired(NOW + 600 + 3599)
    assert store.get_device_code_by_user_code("BCDFGHJK")
    store.purge_expired(NOW + 600 + 3601)
    with pytest.raises(NotFound):
        store.get_device_code_by_user_code("BCDFGHJK")


def test_nul_bytes_are_value_errors_not_driver_errors(store, client_id):
    with pytest.raises(ValueError):
        store.get_device_code_by_user_code("A\x00")
    with pytest.raises(ValueError):
        store.poll_device_code("h\x00", client_id, NOW)

"""The token endpoint's client cache: no database read per request, and changes seen within its TTL.

Across instances the promise is one second (tests/e2e/test_client_changes.py); here the
clock is injected and the store counts its reads.
"""

import time

import pytest
import sqlalchemy as sa

from authsvc import accounts
from authsvc.errors import NotFound
from authsvc.store import open_store
from authsvc.store.client_cache import TTL
from authsvc.store.client_cache import ClientCache
from authsvc.store.schema import clients
from tests.conftest import Clock
from tests.conftest import basic_auth

CC = {"grant_type": "client_credentials"}


class CountingStore:
    """The store, counting ``get_client`` reads."""

    def __init__(self, store):
        self.store = store
        self.reads = 0

    def get_client(self, client_id):
        self.reads += 1
        return self.store.get_client(client_id)


@pytest.fixture
def service(store):
    client, secret = accounts.new_client("svc", now=time.time(), scope="api:read")
    store.create_client(client)
    return client, secret


@pytest.fixture
def counted(store):
    return CountingStore(store)


def test_the_promise_leaves_room_for_a_slow_read():
    assert 0 < TTL <= 0.5


def test_a_client_is_read_once_per_ttl(counted, service):
    clock = Clock(100.0)
    cache = ClientCache(counted, ttl=0.5, clock=clock)
    for _ in range(50):
        assert cache.get(service[0].client_id) == service[0]
    assert counted.reads == 1
    clock.advance(0.49)
    cache.get(service[0].client_id)
    assert counted.reads == 1
    clock.advance(0.01)
    cache.get(service[0].client_id)
    assert counted.reads == 2


def test_a_change_made_by_another_process_is_read_after_the_ttl(counted, service, settings):
    clock = Clock(100.0)
    cache = ClientCache(counted, ttl=0.5, clock=clock)
    cache.get(service[0].client_id)
    # Another process's write reaches this one through the database only: plain SQL here.
    rotated = accounts.hash_client_secret("new secret")
    engine = sa.create_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(clients).where(clients.c.client_id == service[0].client_id).values(secret_hash=rotated)
            )
    finally:
        engine.dispose()
    assert cache.get(service[0].client_id).secret_hash == service[0].secret_hash
    clock.advance(0.5)
    assert cache.get(service[0].client_id).secret_hash == rotated


def test_a_change_through_any_store_of_this_process_is_seen_at_once(counted, service, settings):
    cache = ClientCache(counted, clock=Clock(100.0))
    cache.get(service[0].client_id)
    other = open_store(settings.database_url)
    try:
        other.delete_client(service[0].client_id)
    finally:
        other.close()
    with pytest.raises(NotFound):
        cache.get(service[0].client_id)


def test_unknown_clients_are_not_remembered(counted, service, store):
    clock = Clock(100.0)
    cache = ClientCache(counted, clock=clock)
    with pytest.raises(NotFound):
        cache.get("c_not_yet")
    created, _ = accounts.new_client("late", now=time.time(), scope="api:read")
    store.create_client(created)
    assert cache.get(created.client_id) == created


def test_a_read_overtaken_by_a_change_is_not_kept(service, store):
    """A read that began before a change must not be stored after it, stale, for a whole TTL."""
    clock = Clock(100.0)

    class ChangedWhileReading(CountingStore):
        def get_client(self, client_id):
            record = super().get_client(client_id)
            if self.reads == 1:
                cache.forget(client_id)  # the change lands while this read is in flight
            return record

    slow = ChangedWhileReading(store)
    cache = ClientCache(slow, clock=clock)
    cache.get(service[0].client_id)
    cache.get(service[0].client_id)
    assert slow.reads == 2


def test_the_token_endpoint_reads_no_client_from_the_database_per_request(app, client, services, make_client):
    record, secret = make_client("svc", grant_types=("client_credentials",), redirect_uris=(), scope="api:read")
    reads = []
    real = services.store.get_client
    services.store.get_client = lambda client_id: reads.append(client_id) or real(client_id)
    for _ in range(20):
        assert client.post("/token", data=CC, headers=basic_auth(record.client_id, secret)).status_code == 200
    assert len(reads) <= 2  # once, and once more if the run straddled the TTL


def test_the_old_secret_is_refused_at_once_after_a_rotation_in_this_process(client, cli, make_client):
    record, secret = make_client("svc", grant_types=("client_credentials",), redirect_uris=(), scope="api:read")
    assert client.post("/token", data=CC, headers=basic_auth(record.client_id, secret)).status_code == 200
    code, _, err = cli("clients", "rotate-secret", record.client_id, "--json")
    assert code == 0, err
    response = client.post("/token", data=CC, headers=basic_auth(record.client_id, secret))
    assert response.status_code == 401 and response.json["error"] == "invalid_client"

"""authsvc.ratelimit: moving windows on the database and on Redis, counted atomically.

Every test drives time with an injected clock; none sleeps. Redis keys are
per test (a random issuer prefix), so runs sharing one Redis never meet.
"""

import logging
import secrets
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from authsvc.ratelimit import Limiter
from authsvc.ratelimit import digest
from authsvc.ratelimit import limit
from authsvc.store import open_store
from tests.conftest import Clock
from tests.dbs import store_url  # noqa: F401  (fixture)
from tests.dbs import upgraded_store  # noqa: F401  (the "store" fixture, on every backend)
from tests.services_available import DEAD_REDIS_URL
from tests.services_available import redis_url  # noqa: F401  (fixture)

NOW = 1_700_000_100.0  # 100 s past a multiple of 300: a fixed window would end at NOW + 200
LOGIN = limit("login-user", 10, 300)


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def prefix():
    return "authsvc:rl:test-" + secrets.token_hex(6)


@pytest.fixture(params=["database", "database+redis"])
def limiter(request, store, clock, prefix):
    if request.param == "database":
        return Limiter(store, clock)
    url = request.getfixturevalue("redis_url")
    return Limiter(store, clock, url, redis_prefix=prefix)


def race(n, fn):
    barrier = threading.Barrier(n, timeout=10)

    def run(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_parallel_hits_never_pass_the_limit(limiter):
    for _ in range(9):
        assert limiter.hit(LOGIN, "alice")
    results = race(16, lambda i: limiter.hit(LOGIN, "alice"))
    assert results.count(True) == 1


def test_no_window_edge_to_time_attacks_against(limiter, clock):
    boundary = (NOW // 300 + 1) * 300
    clock.now = boundary - 6.4
    before = [limiter.hit(LOGIN, "alice") for _ in range(10)]
    clock.now = boundary + 0.1
    after = [limiter.hit(LOGIN, "alice") for _ in range(10)]

    assert before == [True] * 10
    assert after == [False] * 10
    # Each guess leaves the window 300 s after it was made, not at a boundary.
    assert limiter.retry_after(LOGIN, "alice") == 294
    clock.now = boundary - 6.4 + 300.5
    assert [limiter.hit(LOGIN, "alice") for _ in range(11)] == [True] * 10 + [False]


def test_refused_hits_are_not_counted_so_the_lock_ends(limiter, clock):
    for _ in range(10):
        assert limiter.hit(LOGIN, "alice")
    hammering = []
    for _ in range(59):
        clock.advance(5)
        hammering.append(limiter.hit(LOGIN, "alice"))
    clock.now = NOW + 300.5

    assert not any(hammering)
    assert limiter.hit(LOGIN, "alice")


def test_clear_takes_one_exact_key(limiter):
    for _ in range(10):
        limiter.hit(LOGIN, "alice")
        limiter.hit(LOGIN, "*")
    limiter.clear(LOGIN, "*")
    assert limiter.hit(LOGIN, "*")
    assert not limiter.hit(LOGIN, "alice")


def test_keys_are_hashed_and_namespaced_in_redis(store, clock, prefix, redis_url):  # noqa: F811
    import redis

    Limiter(store, clock, redis_url, redis_prefix=prefix).hit(LOGIN, "*")
    connection = redis.Redis.from_url(redis_url)
    try:
        keys = {key.decode() for key in connection.scan_iter(prefix + ":*")}
        assert keys == {f"{prefix}:login-user/{digest('*')}/10/300/second"}
    finally:
        connection.delete(*keys)
        connection.close()


def test_redis_counts_what_another_instances_database_has_not_seen(tmp_path, clock, prefix, redis_url):  # noqa: F811
    """Both copies are asked on every attempt: either one refusing refuses."""
    stores = [open_store(f"sqlite:///{tmp_path / name}.db") for name in ("a", "b")]
    for store in stores:
        store.upgrade()
    first, second = (Limiter(store, clock, redis_url, redis_prefix=prefix) for store in stores)
    try:
        for _ in range(10):
            assert first.hit(LOGIN, "alice")
        assert not second.hit(LOGIN, "alice")
    finally:
        for store in stores:
            store.close()


def test_a_redis_outage_mid_attack_keeps_the_lock(store, clock, prefix, redis_url, caplog):  # noqa: F811
    with_redis = Limiter(store, clock, redis_url, redis_prefix=prefix)
    for _ in range(6):
        assert with_redis.hit(LOGIN, "alice")
    # Redis goes away: the same deployment now reaches nothing there.
    without_redis = Limiter(store, clock, DEAD_REDIS_URL, redis_prefix=prefix)

    with caplog.at_level(logging.WARNING, logger="authsvc.ratelimit"):
        during = [without_redis.hit(LOGIN, "alice") for _ in range(8)]

    assert during == [True] * 4 + [False] * 4
    assert any("the database's count decides" in r.getMessage() for r in caplog.records)
    # Redis back, missing the outage's attempts: the database still refuses.
    assert not with_redis.hit(LOGIN, "alice")


@pytest.fixture
def silent_redis():
    """A TCP port that accepts connections and never answers: every Redis call times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def test_a_redis_timeout_never_loses_a_hit(store, clock, prefix, silent_redis, caplog):
    limiter = Limiter(store, clock, silent_redis, redis_prefix=prefix)
    with caplog.at_level(logging.WARNING, logger="authsvc.ratelimit"):
        results = [limiter.hit(LOGIN, "alice") for _ in range(12)]
    assert results == [True] * 10 + [False] * 2
    assert Limiter(store, clock).retry_after(LOGIN, "alice") > 0


def test_retry_after_is_zero_while_there_is_room(limiter, clock):
    assert limiter.retry_after(LOGIN, "alice") == 0
    for _ in range(10):
        limiter.hit(LOGIN, "alice")
        clock.advance(1)
    assert limiter.retry_after(LOGIN, "alice") == 291


def test_a_version_2_database_with_fixed_window_counts_upgrades(store_url, clock):  # noqa: F811
    import sqlalchemy as sa

    from authsvc.store import migrate
    from authsvc.store import schema

    store = open_store(store_url)
    with store._engine.begin() as conn:
        schema.schema_migrations.create(conn)
        for version, name, step in migrate.STEPS[:2]:
            step(conn)
            conn.execute(sa.insert(schema.schema_migrations).values(version=version, name=name, applied_at=NOW))
        conn.exec_driver_sql("INSERT INTO counters VALUES ('login:user:alice', 1699999800, 3, 1700000100)")
    try:
        assert store.upgrade() == [name for _, name, _ in migrate.STEPS[2:]]
        assert Limiter(store, clock).hit(LOGIN, "alice")
    finally:
        store.close()

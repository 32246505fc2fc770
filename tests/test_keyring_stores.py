"""The key ring's behaviour on every key store: files, and the database (SQLite and PostgreSQL).

One suite, run against each backend the way tests/test_store.py runs on both
databases; the database store's own promises (encryption, two KEKs, rewrap,
Redis wake-up) and moving a ring between stores follow.
"""

import json
import secrets
import threading
import time

import jwt
import pytest
import sqlalchemy as sa

from authsvc.config import Settings
from authsvc.errors import KeyRingError
from authsvc.keyring import JWKS_MAX_AGE
from authsvc.keyring import KeyRing
from authsvc.keyring import RotationTooSoon
from authsvc.keyring import Status
from authsvc.keyring import algorithms
from authsvc.keyring import migrate
from authsvc.keyring.database import DatabaseStore
from authsvc.keyring.database import KeyEncryption
from authsvc.keyring.files import FileStore
from authsvc.keyring.signals import RedisSignal
from authsvc.store import open_store
from authsvc.store.sql_signing_keys import SigningKeyTable
from tests.conftest import Clock
from tests.dbs import postgres_url_or_skip
from tests.services_available import redis_url  # noqa: F401

T0 = 1_700_000_000
KEK = secrets.token_bytes(32)


def upgraded(url):
    store = open_store(url)
    store.upgrade()
    store.close()
    return url


@pytest.fixture(params=["files", "sqlite", "postgresql"])
def make_store(request, tmp_path):
    """Return a factory of backends over ONE ring (each call: another instance's view of it)."""
    if request.param == "files":
        yield lambda keks=(KEK,): FileStore(tmp_path / "keys")
        return
    url = upgraded(f"sqlite:///{tmp_path / 'ring.db'}" if request.param == "sqlite" else postgres_url_or_skip(request))
    opened = []

    def make(keks=(KEK,)):
        store = DatabaseStore(SigningKeyTable(url), KeyEncryption(keks))
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def clock():
    return Clock(T0)


def test_a_new_ring_starts_with_an_active_key_and_a_published_successor(make_store, clock):
    admin = KeyRing(make_store(), clock=clock, allow_empty=True)
    assert admin.keys() == [] and admin.prune() == []
    result = admin.rotate("ES256", min_published=JWKS_MAX_AGE)  # never refused: nothing to replace
    assert result.retired is None and result.next.status is Status.NEXT
    served = KeyRing(make_store(), clock=clock)
    assert served.active("ES256") == result.activated
    assert {jwk["kid"] for jwk in served.jwks()["keys"]} == {result.activated.kid, result.next.kid}
    key = served.active("ES256")
    token = jwt.encode({"sub": "a"}, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    assert jwt.decode(token, served.active("ES256").public_key, algorithms=["ES256"]) == {"sub": "a"}


def test_every_rotation_promotes_the_published_successor_and_prunes(make_store, clock):
    ring = KeyRing.init(make_store(), alg="ES256", clock=clock, retire_after=600)
    seen = {jwk["kid"] for jwk in ring.jwks()["keys"]}
    retired = []
    for _ in range(4):
        clock.advance(JWKS_MAX_AGE)
        result = ring.rotate("ES256", min_published=JWKS_MAX_AGE)
        # What becomes active was in the JWKS a verifier fetched one max-age ago.
        assert result.activated.kid in seen
        seen = {jwk["kid"] for jwk in ring.jwks()["keys"]}
        retired.append(result.retired.kid)
    # Retired 600 s after its window began: the first two are gone, by rotate alone.
    assert [key.kid for key in ring.keys() if key.status is Status.RETIRED] == retired[2:]
    assert {key.kid for key in result.pruned} == {retired[1]}


def test_a_too_young_successor_is_refused_with_the_time_it_becomes_safe(make_store, clock):
    ring = KeyRing.init(make_store(), alg="EdDSA", clock=clock)
    active = ring.active("EdDSA")
    clock.advance(100)
    with pytest.raises(RotationTooSoon) as refused:
        ring.rotate("EdDSA", min_published=JWKS_MAX_AGE)
    assert refused.value.safe_at == T0 + JWKS_MAX_AGE
    assert "in 200 s" in str(refused.value) and "\n" not in str(refused.value)
    assert ring.active("EdDSA") == active
    assert ring.rotate("EdDSA").retired == dataclass_retired(active, T0 + 100)  # forced


def dataclass_retired(key, when):
    import dataclasses

    return dataclasses.replace(key, status=Status.RETIRED, retired_at=when)


def test_another_instance_sees_changes_through_its_watcher(make_store, clock):
    served = KeyRing.init(make_store(), alg="ES256", clock=clock, check_interval=0.05).watch()
    try:
        admin = KeyRing(make_store(), clock=clock, allow_empty=True)
        clock.advance(JWKS_MAX_AGE)
        result = admin.rotate("ES256", min_published=JWKS_MAX_AGE)
        deadline = time.monotonic() + 10
        while served.active("ES256").kid != result.activated.kid:
            assert time.monotonic() < deadline, "the watcher never picked the rotation up"
            time.sleep(0.01)
        # Swapped in whole: the new active key comes with its private half.
        assert served.active("ES256").private_key is not None
        assert served.reload_if_changed() is False  # requests never reload a watched ring
    finally:
        served.close()


def test_listing_fifty_keys_parses_no_private_key(make_store, clock, monkeypatch):
    ring = KeyRing.init(make_store(), alg="EdDSA", clock=clock)
    for _ in range(50):
        ring.rotate("EdDSA")
    monkeypatch.setattr(algorithms, "load_private_key", lambda *a: pytest.fail("parsed a private key"))
    started = time.perf_counter()
    listed = KeyRing(make_store(), clock=clock, allow_empty=True).keys()
    assert len(listed) == 52 and time.perf_counter() - started < 1.0


def test_the_session_secret_is_shared_by_instances(make_store):
    secret = KeyRing(make_store(), allow_empty=True).session_secret()
    assert len(secret) == 32
    assert KeyRing(make_store(), allow_empty=True).session_secret() == secret


# --- the database store -----------------------------------------------------------------------


@pytest.fixture
def db_url(tmp_path):
    return upgraded(f"sqlite:///{tmp_path / 'ring.db'}")


def rows(url):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        found = [dict(r._mapping) for r in conn.exec_driver_sql("SELECT * FROM signing_keys")]
        found += [dict(r._mapping) for r in conn.exec_driver_sql("SELECT * FROM keyring_secrets")]
    engine.dispose()
    return found


def db_ring(url, keks=(KEK,), **kw):
    return KeyRing(DatabaseStore(SigningKeyTable(url), KeyEncryption(keks)), **kw)


def test_private_keys_and_the_session_secret_are_encrypted_at_rest(db_url, clock):
    ring = KeyRing.init(DatabaseStore(SigningKeyTable(db_url), KeyEncryption((KEK,))), clock=clock)
    secret = ring.session_secret()
    stored = rows(db_url)
    blob = b"".join(bytes(row.get("private_key") or row.get("value")) for row in stored)
    assert b"PRIVATE KEY" not in blob and secret not in blob
    pem = algorithms.dump_pem(ring.active("RS256").private_key)
    assert pem not in blob


def test_a_ciphertext_moved_to_another_kid_does_not_decrypt(db_url, clock):
    KeyRing.init(DatabaseStore(SigningKeyTable(db_url), KeyEncryption((KEK,))), clock=clock)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        active, waiting = conn.exec_driver_sql("SELECT kid, private_key FROM signing_keys ORDER BY status").all()
        conn.execute(
            sa.text("UPDATE signing_keys SET private_key = :p WHERE kid = :k"), {"p": waiting[1], "k": active[0]}
        )
    engine.dispose()
    with pytest.raises(KeyRingError, match="cannot be decrypted") as caught:
        db_ring(db_url)
    assert KEK.hex() not in str(caught.value)


def test_two_keks_during_a_change_then_rewrap(db_url, clock):
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    ring = KeyRing.init(DatabaseStore(SigningKeyTable(db_url), KeyEncryption((old,))), clock=clock)
    secret = ring.session_secret()
    with pytest.raises(KeyRingError, match="AUTHSVC_KEY_ENCRYPTION_KEY"):
        db_ring(db_url, keks=(new,))
    # New first, old second: everything still opens, and new writes use the new KEK.
    both = DatabaseStore(SigningKeyTable(db_url), KeyEncryption((new, old)))
    assert KeyRing(both).active("RS256").private_key is not None
    assert both.rewrap() == 3  # the active key, its successor and the session secret
    assert both.rewrap() == 0
    only_new = db_ring(db_url, keks=(new,))
    assert only_new.active("RS256").private_key is not None and only_new.session_secret() == secret
    with pytest.raises(KeyRingError, match="cannot be decrypted"):
        db_ring(db_url, keks=(old,))


def test_a_redis_message_wakes_every_instance_at_once(db_url, clock, redis_url):  # noqa: F811
    issuer = f"https://ring-{secrets.token_hex(4)}.test"
    signal = RedisSignal(redis_url, issuer)
    served = KeyRing.init(DatabaseStore(SigningKeyTable(db_url), KeyEncryption((KEK,))), clock=clock)
    served.check_interval = 3600  # polling alone would take an hour
    served.watch()
    listener = signal.listen(served.poke)
    admin = db_ring(db_url, allow_empty=True, clock=clock, on_change=RedisSignal(redis_url, issuer).publish)
    try:
        time.sleep(0.3)  # let the subscription settle (a missed message would only mean a poll)
        started = time.monotonic()
        result = admin.rotate("RS256")
        while served.active("RS256").kid != result.activated.kid:
            assert time.monotonic() - started < 5, "no wake-up through Redis"
            time.sleep(0.005)
        assert time.monotonic() - started < 1.0
    finally:
        signal.close()
        served.close()
    listener.join(timeout=3)
    assert not listener.is_alive()


# --- moving a ring between stores -----------------------------------------------------------


def test_migrate_files_to_database_and_back(tmp_path, db_url, clock):
    files = FileStore(tmp_path / "keys")
    ring = KeyRing.init(files, alg="ES256", clock=clock)
    secret = ring.session_secret()
    database = DatabaseStore(SigningKeyTable(db_url), KeyEncryption((KEK,)))
    copied, wrote = migrate(files, database)
    assert wrote and [k.kid for k in copied] == [k.kid for k in ring.keys()]
    moved = KeyRing(database, clock=clock)
    assert moved.keys() == ring.keys() and moved.session_secret() == secret
    assert moved.active("ES256").private_key is not None
    assert migrate(files, database) == (copied, False)  # idempotent

    clock.advance(JWKS_MAX_AGE)
    moved.rotate("ES256")
    with pytest.raises(KeyRingError, match="--force"):
        migrate(files, database)  # the target now differs: never overwritten silently
    back = FileStore(tmp_path / "back")
    migrate(database, back)
    assert KeyRing(back, clock=clock).keys() == moved.keys()
    migrate(files, database, force=True)
    assert KeyRing(database, clock=clock).keys() == ring.keys()


def test_migrating_an_empty_ring_is_refused(tmp_path, db_url):
    database = DatabaseStore(SigningKeyTable(db_url), KeyEncryption((KEK,)))
    with pytest.raises(KeyRingError, match="holds no keys"):
        migrate(FileStore(tmp_path / "none"), database)


def test_settings_never_show_the_encryption_key():
    value = secrets.token_urlsafe(32)
    settings = Settings.from_env({"AUTHSVC_KEY_STORE": "database", "AUTHSVC_KEY_ENCRYPTION_KEY": value})
    assert value not in repr(settings) and "key_encryption_key" not in repr(settings)
    assert json.dumps(len(settings.key_encryption_key)) == "1"
    with pytest.raises(Exception) as caught:
        Settings.from_env({"AUTHSVC_KEY_ENCRYPTION_KEY": value[:-4]})
    assert value[:-4] not in str(caught.value)


def test_closing_a_watched_ring_stops_its_redis_listener(tmp_path, redis_url):  # noqa: F811
    from authsvc.services import open_keyring

    settings = Settings().with_overrides(keys_dir=str(tmp_path / "keys"), redis_url=redis_url)
    before = set(threading.enumerate())
    ring = open_keyring(settings, create=True, watch=True)
    listeners = [t for t in set(threading.enumerate()) - before if t.name == "authsvc-keyring-redis"]
    assert len(listeners) == 1
    ring.close()
    for listener in listeners:
        listener.join(timeout=3)
        assert not listener.is_alive()

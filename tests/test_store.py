"""Conformance suite of authsvc.store, run on every backend (dex storage/conformance style).

Each test takes ``store`` (or ``store_url`` for an empty database) and so runs
once on SQLite and once on PostgreSQL.
"""

import dataclasses
import pathlib
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from authsvc.errors import AlreadyExists
from authsvc.errors import NotFound
from authsvc.errors import StoreUnavailable
from authsvc.store import AuthorizationCode
from authsvc.store import Client
from authsvc.store import Consent
from authsvc.store import RefreshToken
from authsvc.store import User
from authsvc.store import migrate
from authsvc.store import open_store
from authsvc.store import schema
from tests.dbs import postgres_url_or_skip
from tests.dbs import store_url  # noqa: F401  (fixture)
from tests.dbs import upgraded_store  # noqa: F401  (the "store" fixture, on every backend)

NOW = 1_700_000_000.0
ALL_STEPS = [name for _, name, _ in migrate.STEPS]
DEAD_URL = "postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:1/test"
ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def client(store):
    return store.create_client(Client(client_id="c1", name="Client One"))


def race(n, fn):
    """Run fn(i) in n threads released together; return the results in order."""
    barrier = threading.Barrier(n, timeout=10)

    def run(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def user(sub="u1", username="Admin", **kw):
    return User(sub=sub, username=username, password_hash="argon2-hash", **kw)


def code(code_hash="ch1", client_id="c1", expires_at=NOW + 60, **kw):
    return AuthorizationCode(
        code_hash=code_hash,
        client_id=client_id,
        sub="u1",
        redirect_uri="https://rp.example/cb",
        scope="openid",
        expires_at=expires_at,
        auth_time=NOW - 5,
        **kw,
    )


def token(token_hash="rt1", family_id="f1", client_id="c1", sub="u1", **kw):
    values = dict(scope="openid", issued_at=NOW, expires_at=NOW + 3600, auth_time=NOW - 5)
    values.update(kw)
    return RefreshToken(token_hash=token_hash, family_id=family_id, client_id=client_id, sub=sub, **values)


# users


def test_user_round_trip(store):
    alice = user(email="alice@example.com", disabled=True, created_at=NOW)
    assert store.create_user(alice) == alice
    assert store.get_user("u1") == alice
    assert store.get_user_by_username("Admin") == alice


def test_missing_user_is_not_found(store):
    with pytest.raises(NotFound):
        store.get_user("nobody")
    with pytest.raises(NotFound):
        store.get_user_by_username("nobody")


def test_same_sub_already_exists(store):
    store.create_user(user())
    with pytest.raises(AlreadyExists):
        store.create_user(user(username="other"))


@pytest.mark.parametrize("other", ["admin", "ADMIN", "ａdmin", "Ａｄｍｉｎ"])
def test_username_collides_after_nfkc_and_casefold(store, other):
    store.create_user(user())
    with pytest.raises(AlreadyExists):
        store.create_user(user(sub="u2", username=other))
    assert store.get_user_by_username(other).sub == "u1"


def test_list_users(store):
    store.create_user(user("u2", "bob"))
    store.create_user(user("u1", "Alice"))
    assert [u.username for u in store.list_users()] == ["Alice", "bob"]


def test_update_user_applies_fn(store):
    store.create_user(user())
    updated = store.update_user("u1", lambda u: dataclasses.replace(u, username="root", disabled=True))
    assert store.get_user("u1") == updated
    assert store.get_user_by_username("ROOT").disabled is True
    with pytest.raises(NotFound):
        store.get_user_by_username("admin")


def test_update_user_missing_is_not_found(store):
    with pytest.raises(NotFound):
        store.update_user("nobody", lambda u: u)


def test_update_user_failure_rolls_back(store):
    store.create_user(user())
    store.create_user(user("u2", "bob"))

    def boom(u):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.update_user("u1", boom)
    with pytest.raises(AlreadyExists):
        store.update_user("u1", lambda u: dataclasses.replace(u, username="BOB"))
    with pytest.raises(ValueError):
        store.update_user("u1", lambda u: dataclasses.replace(u, sub="u3"))
    assert store.get_user("u1") == user()


def test_update_user_holds_the_row(store):
    store.create_user(user(email=""))
    # Each fn reads then writes; without the row lock some appends would be lost.
    race(10, lambda i: store.update_user("u1", lambda u: dataclasses.replace(u, email=u.email + "x")))
    assert store.get_user("u1").email == "x" * 10


# clients and consents


def test_client_round_trip(store):
    full = Client(
        client_id="c1",
        name="One",
        secret_hash="abc",
        redirect_uris=("https://a.example/cb", "http://127.0.0.1/cb"),
        post_logout_redirect_uris=("https://a.example/bye",),
        grant_types=("authorization_code", "refresh_token"),
        scope="openid profile",
        token_endpoint_auth_method="client_secret_post",
        first_party=True,
        id_token_signed_response_alg="ES256",
        audiences=("https://api.example",),
        created_at=NOW,
    )
    assert store.create_client(full) == full
    assert store.get_client("c1") == full
    assert store.list_clients() == [full]
    with pytest.raises(AlreadyExists):
        store.create_client(Client(client_id="c1", name="again"))
    with pytest.raises(NotFound):
        store.get_client("c2")


def test_update_client(store, client):
    updated = store.update_client("c1", lambda c: dataclasses.replace(c, redirect_uris=("https://x/cb",)))
    assert store.get_client("c1") == updated
    with pytest.raises(NotFound):
        store.update_client("c2", lambda c: c)


def test_delete_client_takes_its_codes_tokens_and_consents(store, client):
    store.create_client(Client(client_id="c2", name="Two"))
    for client_id in ("c1", "c2"):
        store.create_code(code(f"code-{client_id}", client_id))
        store.create_refresh_token(token(f"rt-{client_id}", f"f-{client_id}", client_id))
        store.save_consent(Consent(sub="u1", client_id=client_id, scope="openid"))
    store.delete_client("c1")
    with pytest.raises(NotFound):
        store.get_client("c1")
    assert store.consume_code("code-c1", NOW) == (None, False)
    with pytest.raises(NotFound):
        store.get_refresh_token("rt-c1")
    with pytest.raises(NotFound):
        store.get_consent("u1", "c1")
    assert store.get_refresh_token("rt-c2").client_id == "c2"
    assert store.get_consent("u1", "c2").scope == "openid"
    with pytest.raises(NotFound):
        store.delete_client("c1")


def test_consent_upsert(store, client):
    with pytest.raises(NotFound):
        store.get_consent("u1", "c1")
    store.save_consent(Consent(sub="u1", client_id="c1", scope="openid", granted_at=NOW))
    store.save_consent(Consent(sub="u1", client_id="c1", scope="openid email", granted_at=NOW + 1))
    assert store.get_consent("u1", "c1") == Consent("u1", "c1", "openid email", NOW + 1)
    store.save_consent(Consent("u1", "c1", "openid", NOW + 2, redirect_uris=("http://127.0.0.1:5000/cb",)))
    assert store.get_consent("u1", "c1").redirect_uris == ("http://127.0.0.1:5000/cb",)
    with pytest.raises(NotFound):
        store.save_consent(Consent(sub="u1", client_id="unknown", scope="openid"))


# authorization codes


def test_consume_code_once(store, client):
    store.create_code(code())
    record, won = store.consume_code("ch1", NOW)
    assert won and record == code(used_at=NOW)
    store.record_code_issue("ch1", "jti-1", NOW + 600, "f1")
    replay, won = store.consume_code("ch1", NOW + 1)
    assert not won
    assert (replay.used_at, replay.issued_jti, replay.issued_exp, replay.issued_family) == (
        NOW,
        "jti-1",
        NOW + 600,
        "f1",
    )


def test_consume_code_unknown_or_expired(store, client):
    store.create_code(code(expires_at=NOW))
    assert store.consume_code("ch1", NOW) == (None, False)
    assert store.consume_code("nope", NOW) == (None, False)


def test_consume_code_replay_after_expiry_still_returns_record(store, client):
    store.create_code(code())
    store.consume_code("ch1", NOW)
    record, won = store.consume_code("ch1", NOW + 120)
    assert not won and record.used_at == NOW


def test_create_code_errors(store, client):
    store.create_code(code())
    with pytest.raises(AlreadyExists):
        store.create_code(code())
    with pytest.raises(NotFound):
        store.create_code(code("ch2", client_id="unknown"))
    with pytest.raises(NotFound):
        store.record_code_issue("nope", "jti", NOW, None)


def test_consume_code_race_has_one_winner(store, client):
    store.create_code(code())
    results = race(20, lambda i: store.consume_code("ch1", NOW))
    assert sum(won for _, won in results) == 1
    assert all(record.used_at == NOW for record, _ in results)


# refresh tokens


def test_refresh_token_round_trip(store, client):
    rt = token(sid="s1", resource="https://api", access_jti="a1", access_exp=NOW + 600)
    store.create_refresh_token(rt)
    assert store.get_refresh_token("rt1") == rt
    with pytest.raises(NotFound):
        store.get_refresh_token("nope")
    with pytest.raises(AlreadyExists):
        store.create_refresh_token(rt)
    with pytest.raises(NotFound):
        store.create_refresh_token(token("rt2", client_id="unknown"))


def test_spend_refresh_token_once(store, client):
    store.create_refresh_token(token())
    assert store.spend_refresh_token("rt1", NOW + 1, token("rt2"), b"sealed")
    spent = store.get_refresh_token("rt1")
    assert (spent.spent_at, spent.successor_blob, spent.successor_hash) == (NOW + 1, b"sealed", "rt2")
    assert store.get_refresh_token("rt2").spent_at is None
    assert not store.spend_refresh_token("rt1", NOW + 2, token("rt3"), b"late")
    with pytest.raises(NotFound):
        store.get_refresh_token("rt3")
    assert not store.spend_refresh_token("nope", NOW, token("rt4"), b"")


def test_spend_revoked_refresh_token_fails(store, client):
    store.create_refresh_token(token())
    store.revoke_family("f1", NOW)
    assert not store.spend_refresh_token("rt1", NOW + 1, token("rt2"), b"x")


def test_spend_refresh_token_race_has_one_winner(store, client):
    store.create_refresh_token(token())
    results = race(20, lambda i: store.spend_refresh_token("rt1", NOW, token(f"next-{i}"), b"x"))
    assert results.count(True) == 1
    winner = store.get_refresh_token(f"next-{results.index(True)}")
    assert winner.spent_at is None
    # Exactly one successor: the losers' inserts never happened.
    family = sa.select(sa.func.count()).where(schema.refresh_tokens.c.family_id == "f1")
    with store._engine.connect() as conn:
        assert conn.execute(family).scalar() == 2


def test_replay_gets_the_sealed_successor_only_while_it_is_unspent(store, client):
    """RFC 9700 §4.14.2: the grace answers a replay only until the successor is used."""
    store.create_refresh_token(token())
    assert store.spend_refresh_token("rt1", NOW, token("rt2"), b"sealed")
    assert store.replay_refresh_token("rt1", spent_since=NOW - 5) == (b"sealed", None)
    assert store.spend_refresh_token("rt2", NOW + 1, token("rt3"), b"sealed-2")
    assert store.replay_refresh_token("rt1", spent_since=NOW - 5) == (None, "successor_used")
    # The newest spend has its own grace, as long as rt3 is unspent.
    assert store.replay_refresh_token("rt2", spent_since=NOW - 5) == (b"sealed-2", None)


@pytest.mark.parametrize(
    ("setup", "spent_since", "refused"),
    [
        (lambda s: None, NOW - 5, "unspent"),
        (lambda s: s.spend_refresh_token("rt1", NOW, token("rt2"), b"x"), NOW + 1, "grace_over"),
        (
            lambda s: s.spend_refresh_token("rt1", NOW, token("rt2"), b"x") and s.revoke_family("f1", NOW),
            NOW - 5,
            "revoked",
        ),
    ],
)
def test_replay_is_refused_outside_the_grace(store, client, setup, spent_since, refused):
    store.create_refresh_token(token())
    setup(store)
    assert store.replay_refresh_token("rt1", spent_since=spent_since) == (None, refused)
    assert store.replay_refresh_token("nope", spent_since=spent_since) == (None, "unknown")


def test_replay_of_a_token_whose_successor_is_missing_is_refused(store, client):
    # A token spent before successors were recorded: no successor to check, so no grace.
    store.create_refresh_token(token(spent_at=NOW, successor_blob=b"sealed"))
    assert store.replay_refresh_token("rt1", spent_since=NOW - 5) == (None, "revoked")


def test_replays_racing_the_successor_spend_never_get_it_after_the_spend(store, client):
    """Replays on many threads while the successor is spent: none that starts after
    the spend committed gets the successor (the check is one statement, one state)."""
    store.create_refresh_token(token())
    assert store.spend_refresh_token("rt1", NOW, token("rt2"), b"sealed")
    committed = threading.Event()

    def one(i):
        if i == 0:
            assert store.spend_refresh_token("rt2", NOW + 1, token("rt3"), b"sealed-2")
            committed.set()
            return None
        started_after_spend = committed.is_set()
        return started_after_spend, store.replay_refresh_token("rt1", spent_since=NOW - 5)

    results = [r for r in race(20, one) if r is not None]
    assert all(replay == (None, "successor_used") for after, replay in results if after)
    assert all(replay in ((b"sealed", None), (None, "successor_used")) for _, replay in results)
    assert store.replay_refresh_token("rt1", spent_since=NOW - 5) == (None, "successor_used")


def test_revoke_family_returns_live_access_tokens(store, client):
    store.create_refresh_token(token("rt1", access_jti="a1", access_exp=NOW - 1))
    store.create_refresh_token(token("rt2", access_jti="a2", access_exp=NOW + 600))
    store.create_refresh_token(token("rt3"))
    store.create_refresh_token(token("other", "f2", access_jti="a9", access_exp=NOW + 600))
    assert store.revoke_family("f1", NOW) == [("a2", NOW + 600)]
    assert all(store.get_refresh_token(h).revoked_at == NOW for h in ("rt1", "rt2", "rt3"))
    assert store.get_refresh_token("other").revoked_at is None
    # Revoking again keeps the first revocation time.
    store.revoke_family("f1", NOW + 5)
    assert store.get_refresh_token("rt1").revoked_at == NOW


@pytest.mark.parametrize(
    ("criteria", "revoked"),
    [
        ({"sub": "u1"}, {"a", "b"}),
        ({"client_id": "c2"}, {"c"}),
        ({"sid": "s1"}, {"a", "c"}),
        ({"sub": "u1", "sid": "s1"}, {"a"}),
    ],
)
def test_revoke_refresh_tokens_by_criteria(store, client, criteria, revoked):
    store.create_client(Client(client_id="c2", name="Two"))
    store.create_refresh_token(token("a", "fa", "c1", "u1", sid="s1", access_jti="ja", access_exp=NOW + 9))
    store.create_refresh_token(token("b", "fb", "c1", "u1", access_jti="jb", access_exp=NOW + 9))
    store.create_refresh_token(token("c", "fc", "c2", "u2", sid="s1", access_jti="jc", access_exp=NOW + 9))
    live = store.revoke_refresh_tokens(NOW, **criteria)
    assert {jti for jti, _ in live} == {f"j{h}" for h in revoked}
    assert {h for h in "abc" if store.get_refresh_token(h).revoked_at} == revoked


def test_revoke_refresh_tokens_needs_a_criterion(store):
    with pytest.raises(ValueError):
        store.revoke_refresh_tokens(NOW)


# revocation list


def test_revocation_versions_increase(store):
    first = store.add_revocations([("jti", "a", NOW + 60, None), ("sid", "s", NOW + 60, None)], NOW)
    second = store.add_revocations([("sub", "u1", NOW + 60, NOW)], NOW)
    versions = [r.version for r in first + second]
    assert versions == sorted(set(versions)) and versions[0] >= 1
    assert second[0].before == NOW
    assert store.add_revocations([], NOW) == []


def test_revocation_re_added_gets_new_version_and_max_times(store):
    (old,) = store.add_revocations([("sub", "u1", NOW + 60, NOW)], NOW)
    (new,) = store.add_revocations([("sub", "u1", NOW + 30, NOW + 10)], NOW + 10)
    assert new.version > old.version
    assert (new.exp, new.before) == (NOW + 60, NOW + 10)
    (again,) = store.add_revocations([("sub", "u1", NOW + 90, None)], NOW + 20)
    assert (again.exp, again.before) == (NOW + 90, NOW + 10)
    page = store.revocations_since(0, NOW)
    assert page.entries == [again]


def test_revocation_kind_is_checked(store):
    with pytest.raises(ValueError):
        store.add_revocations([("aud", "x", NOW + 60, None)], NOW)
    with pytest.raises(ValueError):
        store.is_listed("aud", "x", NOW)


def test_revocations_since_delta_and_full(store):
    a, b = store.add_revocations([("jti", "a", NOW + 60, None), ("jti", "b", NOW + 60, None)], NOW)
    (c,) = store.add_revocations([("jti", "c", NOW + 60, None)], NOW)
    page = store.revocations_since(0, NOW)
    assert (page.version, page.full, page.entries) == (c.version, True, [a, b, c])
    page = store.revocations_since(b.version, NOW)
    assert (page.version, page.full, page.entries) == (c.version, False, [c])
    page = store.revocations_since(c.version, NOW)
    assert (page.full, page.entries) == (False, [])
    page = store.revocations_since(c.version + 1, NOW)  # from another database
    assert (page.full, page.entries) == (True, [a, b, c])
    # Expired entries are left out even before purge.
    assert store.revocations_since(0, NOW + 60).entries == []


def test_purge_keeps_revocation_version_monotonic(store):
    a, b = store.add_revocations([("jti", "a", NOW + 10, None), ("jti", "b", NOW + 10, None)], NOW)
    (c,) = store.add_revocations([("jti", "c", NOW + 100, None)], NOW)
    assert store.purge_expired(NOW + 50) == 2
    page = store.revocations_since(0, NOW + 50)
    assert (page.version, page.entries) == (c.version, [c])
    # A poller that stopped before the purged rows must start over.
    assert store.revocations_since(a.version, NOW + 50).full
    assert not store.revocations_since(b.version, NOW + 50).full
    store.purge_expired(NOW + 200)
    assert store.revocations_since(0, NOW + 200).version == c.version
    (d,) = store.add_revocations([("jti", "d", NOW + 300, None)], NOW + 200)
    assert d.version > c.version
    assert store.revocations_since(c.version, NOW + 200).entries == [d]


def test_concurrent_revocations_get_distinct_versions(store):
    stored = race(10, lambda i: store.add_revocations([("jti", f"j{i}", NOW + 60, None)], NOW))
    versions = sorted(r.version for (r,) in stored)
    assert versions == list(range(versions[0], versions[0] + 10))


def test_is_listed_and_listed_before(store):
    store.add_revocations(
        [("sid", "s1", NOW + 60, None), ("sub", "u1", NOW + 60, NOW - 5), ("jti", "old", NOW, None)], NOW
    )
    assert store.is_listed("sid", "s1", NOW)
    assert not store.is_listed("sid", "s2", NOW)
    assert not store.is_listed("jti", "old", NOW)
    assert not store.is_listed("sid", "s1", NOW + 60)
    assert store.listed_before("sub", "u1", NOW) == NOW - 5
    assert store.listed_before("sub", "u2", NOW) is None
    assert store.listed_before("sub", "u1", NOW + 61) is None


# counters


def test_entries_fill_a_moving_window_and_leave_it_one_by_one(store):
    key = "login:1.2.3.4"
    assert [store.acquire_entry(key, 3, 60, NOW + i) for i in range(4)] == [True, True, True, False]
    assert store.moving_window(key, 3, 60, NOW + 3) == (NOW, 3)
    # The window includes its edge: the first entry counts until just after NOW + 60.
    assert not store.acquire_entry(key, 3, 60, NOW + 60)
    assert store.acquire_entry(key, 3, 60, NOW + 60.5)
    assert not store.acquire_entry(key, 3, 60, NOW + 60.6)
    store.clear_entries(key)
    assert store.moving_window(key, 3, 60, NOW + 61) == (NOW + 61, 0)
    assert store.moving_window("never", 3, 60, NOW) == (NOW, 0)
    with pytest.raises(ValueError):
        store.acquire_entry("k", 3, 0, NOW)


def test_clear_entries_takes_the_exact_key_only(store):
    for key in ("*", "a", "%"):
        assert store.acquire_entry(key, 1, 60, NOW)
    store.clear_entries("*")
    store.clear_entries("%")
    assert store.moving_window("a", 1, 60, NOW)[1] == 1


def test_concurrent_entries_never_exceed_the_limit(store):
    results = race(20, lambda i: store.acquire_entry("k", 5, 3600, NOW))
    assert results.count(True) == 5
    assert store.moving_window("k", 5, 3600, NOW)[1] == 5


# housekeeping


def test_purge_expired(store, client):
    store.create_code(code("fresh", expires_at=NOW))
    store.create_code(code("stale", expires_at=NOW - 3601))
    store.consume_code("fresh", NOW - 1)
    store.create_refresh_token(token("live", expires_at=NOW + 1))
    store.create_refresh_token(token("dead", expires_at=NOW - 1))
    store.acquire_entry("old", 5, 60, NOW - 120)
    store.acquire_entry("new", 5, 60, NOW)
    assert store.purge_expired(NOW) == 3
    # A used code outlives its expiry, so a late replay is still caught.
    assert store.consume_code("fresh", NOW)[0] is not None
    assert store.get_refresh_token("live")
    with pytest.raises(NotFound):
        store.get_refresh_token("dead")
    assert store.moving_window("new", 5, 60, NOW)[1] == 1


# input that must never reach the database


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.create_user(user(username="ad\x00min")), "username"),
        (lambda s: s.get_user_by_username("ad\x00min"), "username"),
        (lambda s: s.get_user("u\x00"), "sub"),
        (lambda s: s.create_client(Client("c", "n", redirect_uris=("https://a\x00",))), "redirect_uris"),
        (lambda s: s.consume_code("c\x00", NOW), "code_hash"),
        (lambda s: s.add_revocations([("jti", "j\x00", NOW, None)], NOW), "value"),
        (lambda s: s.acquire_entry("k\x00", 5, 60, NOW), "key"),
    ],
)
def test_nul_byte_is_a_value_error(store, call, field):
    with pytest.raises(ValueError, match=f"NUL byte in {field}"):
        call(store)


# lifecycle


def test_upgrade_is_idempotent(store_url):  # noqa: F811
    store = open_store(store_url)
    assert store.schema_version() == 0
    assert store.upgrade() == ALL_STEPS
    assert store.upgrade() == []
    assert store.schema_version() == len(ALL_STEPS)
    store.close()


def test_version_1_database_keeps_its_clients_through_the_upgrade(store_url):  # noqa: F811
    store = open_store(store_url)
    with store._engine.begin() as conn:
        schema.schema_migrations.create(conn)
        migrate._step_1(conn)
        conn.execute(sa.insert(schema.schema_migrations).values(version=1, name="x", applied_at=NOW))
        conn.exec_driver_sql(
            "INSERT INTO clients VALUES ('c1', 'old', NULL, '[]', '[]', '[\"client_credentials\"]', '', "
            "'client_secret_basic', false, 'RS256', '[\"https://api.example\"]', 1.0)"
        )
    assert store.upgrade() == ALL_STEPS[1:]
    client = store.get_client("c1")
    assert client.audiences == ("https://api.example",)
    assert client.allowed_origins == ()
    store.close()


def test_concurrent_upgrade_from_threads(store_url):  # noqa: F811
    stores = [open_store(store_url) for _ in range(4)]
    applied = race(4, lambda i: stores[i].upgrade())
    # Each step exactly once, whichever thread took it.
    assert sorted(name for names in applied for name in names) == sorted(ALL_STEPS)
    assert stores[0].schema_version() == len(ALL_STEPS)
    for store in stores:
        store.close()


def test_concurrent_upgrade_from_processes(store_url):  # noqa: F811
    start = time.time() + 1.0
    script = (
        "import sys, time\n"
        "from authsvc.store import open_store\n"
        "store = open_store(sys.argv[1])\n"
        "time.sleep(max(0, float(sys.argv[2]) - time.time()))\n"
        "print(len(store.upgrade()))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, store_url, str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=30) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sum(int(out.strip()) for out, _ in outputs) == len(ALL_STEPS)


def test_migrated_schema_matches_metadata(store):
    with store._engine.connect() as conn:
        inspector = sa.inspect(conn)
        for table in schema.metadata.sorted_tables:
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert columns == set(table.columns.keys()), table.name


def test_open_store_round_trip(store_url):  # noqa: F811
    first = open_store(store_url)
    first.upgrade()
    first.create_user(user())
    first.close()
    second = open_store(store_url)
    assert second.get_user("u1") == user()
    second.close()


def test_sqlite_relative_path_creates_parent_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///instance/sub/authsvc.db")
    store.upgrade()
    assert (tmp_path / "instance/sub/authsvc.db").exists()
    with store._engine.connect() as conn:
        pragmas = [
            conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "foreign_keys", "busy_timeout")
        ]
    assert pragmas == ["wal", 1, 5000]
    store.close()


def test_postgresql_sessions_have_a_statement_timeout(request):
    store = open_store(postgres_url_or_skip(request))
    with store._engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "5s"
        assert conn.exec_driver_sql("SHOW search_path").scalar().startswith("t_")
    store.close()


def test_ping(store):
    store.ping()


def test_dead_database_is_unavailable_quickly():
    store = open_store(DEAD_URL)
    assert "s3cret-pw" not in store.url_display
    started = time.monotonic()
    for call in (store.ping, lambda: store.get_user("u1")):
        with pytest.raises(StoreUnavailable, match="database unavailable") as caught:
            call()
        assert "s3cret-pw" not in str(caught.value)
    assert time.monotonic() - started < 5
    store.close()


def test_missing_schema_is_unavailable_with_a_hint(store_url):  # noqa: F811
    store = open_store(store_url)
    with pytest.raises(StoreUnavailable, match="db upgrade"):
        store.get_user("u1")
    store.close()


def test_unsupported_url_is_a_value_error():
    with pytest.raises(ValueError):
        open_store("mysql://localhost/x")
    with pytest.raises(ValueError):
        open_store("not a url")

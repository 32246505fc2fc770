"""authsvc.revocation: the revocation list and its Redis fan-out, on every store backend.

``Revocations`` decides what goes on the list and for how long; the store
keeps it; ``RedisNotifier`` tells verifiers at once. (The rate limiter's
Redis rules are tested in tests/test_ratelimit.py.)
"""

import dataclasses
import json
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from authsvc.config import Settings
from authsvc.revocation import RedisNotifier
from authsvc.revocation import Revocations
from authsvc.revocation import channel_for
from authsvc.store import Client
from authsvc.store import RefreshToken
from authsvc.store import open_store
from tests.conftest import Clock
from tests.dbs import postgres_url_or_skip
from tests.dbs import store_url  # noqa: F401  (fixture)
from tests.services_available import DEAD_REDIS_URL
from tests.services_available import redis_url  # noqa: F401  (fixture)

NOW = 1_800_000_000.0
SETTINGS = Settings()
LEEWAY = SETTINGS.leeway
HORIZON = SETTINGS.longest_token_ttl
SESSION_HORIZON = max(HORIZON, SETTINGS.session_ttl)


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def store(store_url):  # noqa: F811
    store = open_store(store_url)
    store.upgrade()
    store.create_client(Client(client_id="c1", name="One"))
    store.create_client(Client(client_id="c2", name="Two"))
    yield store
    store.close()


@pytest.fixture
def revocations(store, clock):
    return Revocations(SETTINGS, store, clock)


def refresh_token(store, **fields):
    """Store a live refresh token with the access token issued beside it; return its record."""
    record = refresh_token_record(**fields)
    store.create_refresh_token(record)
    return record


def refresh_token_record(*, family="f1", client_id="c1", sub="u1", sid=None, access_exp=NOW + 600):
    return RefreshToken(
        token_hash=secrets.token_hex(16),
        family_id=family,
        client_id=client_id,
        sub=sub,
        scope="openid",
        issued_at=NOW,
        expires_at=NOW + 86400,
        auth_time=NOW,
        sid=sid,
        access_jti="at-" + secrets.token_hex(6),
        access_exp=access_exp,
    )


def revoked(store, record) -> bool:
    return store.get_refresh_token(record.token_hash).revoked_at is not None


def listed(document, kind) -> dict:
    return {entry[kind]: entry for entry in document[kind]}


# --- what goes on the list ------------------------------------------------------------


def test_revoke_jtis_lists_live_tokens_until_exp_plus_leeway_and_skips_expired(revocations):
    entries = revocations.revoke_jtis([("live", NOW + 300), ("expired", NOW - LEEWAY), ("long-gone", NOW - 3600)])

    assert [(e.kind, e.value) for e in entries] == [("jti", "live")]
    jtis = listed(revocations.document(), "jti")
    assert set(jtis) == {"live"}
    # Verifiers accept a token up to `leeway` past exp, so the entry must outlive that.
    assert jtis["live"]["exp"] == NOW + 300 + LEEWAY


def test_a_token_inside_the_verifiers_leeway_is_still_listed(store, revocations):
    # Just past exp a verifier still accepts the token for up to `leeway` seconds:
    # revoking it then must list it, or it stays usable for that long.
    revocations.revoke_jtis([("grace", NOW - 10), ("gone", NOW - LEEWAY)])
    in_family = refresh_token(store, family="fam", access_exp=NOW - 10)
    revocations.revoke_family("fam")

    jtis = listed(revocations.document(), "jti")
    assert set(jtis) == {"grace", in_family.access_jti}
    assert jtis["grace"]["exp"] == NOW - 10 + LEEWAY
    assert revocations.is_token_revoked({"jti": in_family.access_jti, "sub": "u1", "client_id": "c1", "iat": NOW - 600})


def test_end_session_lists_sid_and_revokes_that_sessions_refresh_tokens(store, revocations):
    first = refresh_token(store, family="f1", sid="s1")
    second = refresh_token(store, family="f2", sid="s1", client_id="c2")
    other = refresh_token(store, family="f3", sid="s2")

    revocations.end_session("s1")

    document = revocations.document()
    assert set(listed(document, "sid")) == {"s1"}
    # Published only while a token of that session can be live; the store keeps it longer (below).
    assert listed(document, "sid")["s1"]["exp"] == NOW + HORIZON
    assert revoked(store, first) and revoked(store, second)
    assert not revoked(store, other)
    # The session's access tokens are listed one by one too, so verifiers
    # that do not know the sid (client_credentials-style checks) still reject them.
    assert set(listed(document, "jti")) == {first.access_jti, second.access_jti}
    assert revocations.is_session_ended("s1")
    assert not revocations.is_session_ended("s2")


@pytest.mark.parametrize(
    ("kind", "revoke", "owner", "bystander"),
    [
        ("sub", "revoke_subject", {"sub": "u1"}, {"sub": "u2"}),
        ("client_id", "revoke_client", {"client_id": "c1"}, {"client_id": "c2"}),
    ],
)
def test_revoking_a_subject_or_client_makes_a_before_entry_and_revokes_its_refresh_tokens(
    store, revocations, clock, kind, revoke, owner, bystander
):
    held = refresh_token(store, family="f1", **owner)
    untouched = refresh_token(store, family="f2", **bystander)
    value = owner[kind]

    getattr(revocations, revoke)(value)

    entry = listed(revocations.document(), kind)[value]
    assert entry["before"] == NOW
    # Every token issued up to now, whatever its kind, has expired by exp.
    assert entry["exp"] >= NOW + HORIZON
    assert revoked(store, held)
    assert not revoked(store, untouched)
    claims = {"jti": "j1", "sub": "u1", "client_id": "c1", **owner}
    assert revocations.is_token_revoked({**claims, "iat": NOW - 1})
    assert not revocations.is_token_revoked({**claims, "iat": NOW + 1})
    assert not revocations.is_token_revoked({"jti": "j2", "sub": "u2", "client_id": "c2", "iat": NOW - 1, **bystander})


def test_revoke_family_revokes_every_token_and_lists_its_live_access_tokens(store, revocations):
    spent = refresh_token(store, family="fam")
    newest = refresh_token(store, family="fam")
    stale = refresh_token(store, family="fam", access_exp=NOW - LEEWAY - 5)
    stranger = refresh_token(store, family="other")

    revocations.revoke_family("fam")

    assert all(revoked(store, t) for t in (spent, newest, stale))
    assert not revoked(store, stranger)
    assert set(listed(revocations.document(), "jti")) == {spent.access_jti, newest.access_jti}


def test_revoking_nothing_changes_nothing(store, revocations):
    assert revocations.revoke_jtis([]) == []
    assert revocations.revoke_family("no-such-family") == []
    assert revocations.document()["version"] == 0


def test_a_session_ends_when_its_sid_is_listed_or_its_user_revoked_after_it_began(revocations, clock):
    revocations.end_session("s-ended")
    revocations.revoke_subject("u-revoked")

    assert revocations.is_session_ended("s-ended")
    assert revocations.is_session_ended("s-live", "u-revoked", NOW - 1)
    assert not revocations.is_session_ended("s-live", "u-revoked", NOW + 1)
    assert not revocations.is_session_ended("s-live", "u-other", NOW - 1)
    assert not revocations.is_session_ended("s-live")
    clock.advance(SESSION_HORIZON)
    assert not revocations.is_session_ended("s-ended")
    assert not revocations.is_session_ended("s-live", "u-revoked", NOW - 1)


def test_is_token_revoked_follows_the_contract_rules(revocations, clock):
    revocations.revoke_jtis([("j-listed", NOW + 600)])
    revocations.end_session("s-ended")
    base = {"jti": "j-other", "sub": "u9", "client_id": "c9", "iat": NOW - 10}

    assert revocations.is_token_revoked({**base, "jti": "j-listed"})
    assert revocations.is_token_revoked({**base, "sid": "s-ended"})
    assert not revocations.is_token_revoked({**base, "sid": "s-live"})
    assert not revocations.is_token_revoked(base)


# --- the document: full, delta, expiry ------------------------------------------------------


def test_document_full_versus_delta(revocations):
    revocations.revoke_jtis([("a", NOW + 60)])
    revocations.revoke_subject("u1")
    middle = revocations.document()["version"]
    revocations.revoke_jtis([("b", NOW + 60)])
    revocations.revoke_client("c1")

    full = revocations.document()
    assert "since" not in full
    assert set(full) == {"version", "jti", "sid", "sub", "client_id"}
    assert set(listed(full, "jti")) == {"a", "b"}
    assert set(listed(full, "sub")) == {"u1"}

    delta = revocations.document(middle)
    assert delta["since"] == middle
    assert delta["version"] == full["version"] > middle
    assert set(listed(delta, "jti")) == {"b"}
    assert delta["sub"] == []
    assert set(listed(delta, "client_id")) == {"c1"}

    assert revocations.document(full["version"])["jti"] == []
    # A version this database never handed out (another database, a reset): start over.
    assert "since" not in revocations.document(full["version"] + 100)


def test_relisting_an_entry_moves_it_into_the_next_delta(revocations, clock):
    revocations.revoke_subject("u1")
    seen = revocations.document()["version"]
    clock.advance(5)

    revocations.revoke_subject("u1")

    delta = revocations.document(seen)
    assert listed(delta, "sub")["u1"]["before"] == NOW + 5
    assert len(revocations.document()["sub"]) == 1


def test_entries_leave_the_list_once_every_token_they_match_has_expired(store, revocations, clock):
    revocations.revoke_jtis([("short", NOW + 30)])
    revocations.end_session("s1")
    revocations.revoke_subject("u1")
    version = revocations.document()["version"]

    clock.advance(30 + LEEWAY - 1)
    assert set(listed(revocations.document(), "jti")) == {"short"}
    clock.advance(1)
    assert revocations.document()["jti"] == []
    assert not revocations.is_token_revoked({"jti": "short", "sub": "u2", "client_id": "c1", "iat": NOW - 1})

    clock.advance(HORIZON - 30 - LEEWAY - 1)
    assert set(listed(revocations.document(), "sub")) == {"u1"}
    assert set(listed(revocations.document(), "sid")) == {"s1"}
    clock.advance(1)
    # No token can match them any more, so verifiers no longer get them, and the
    # list stays bounded by the token lifetime; the store still ends the cookie.
    assert revocations.document()["sub"] == revocations.document()["sid"] == []
    assert revocations.is_session_ended("s1")
    assert revocations.is_session_ended("s2", "u1", NOW - 1)
    clock.advance(SESSION_HORIZON - HORIZON)
    document = revocations.document()
    assert (document["sid"], document["sub"], document["client_id"]) == ([], [], [])
    assert not revocations.is_session_ended("s1")
    # Housekeeping deletes the rows; the version never goes back.
    assert store.purge_expired(clock()) >= 3
    assert revocations.document()["version"] == version
    revocations.revoke_jtis([("later", clock() + 60)])
    assert revocations.document()["version"] == version + 1


def test_versions_are_monotonic_across_two_services_on_one_postgresql_database(request, clock):
    url = postgres_url_or_skip(request)
    first_store, second_store = open_store(url), open_store(url)
    request.addfinalizer(first_store.close)
    request.addfinalizer(second_store.close)
    first_store.upgrade()
    second_store.upgrade()
    first = Revocations(SETTINGS, first_store, clock)
    second = Revocations(SETTINGS, second_store, clock)

    def revoke(i):
        owner = first if i % 2 else second
        return [e.version for e in owner.revoke_jtis([(f"j{i}", NOW + 600)])]

    with ThreadPoolExecutor(8) as pool:
        versions = sorted(v for batch in pool.map(revoke, range(40)) for v in batch)

    assert versions == list(range(1, 41))
    assert first.document() == second.document()
    assert first.document()["version"] == 40
    seen = first.document()["version"]
    second.revoke_jtis([("after", NOW + 600)])
    assert set(listed(first.document(seen), "jti")) == {"after"}


def test_a_refresh_racing_a_family_revocation_cannot_leave_a_live_successor(request, clock):
    """Refresh-vs-revoke (Keycloak #51312): the revocation must also catch the successor
    that a refresh, holding the spent token's row lock, committed while the revocation waited."""
    import threading

    import sqlalchemy as sa

    url = postgres_url_or_skip(request)
    store = open_store(url)
    request.addfinalizer(store.close)
    store.upgrade()
    store.create_client(Client(client_id="c1", name="One"))
    revocations = Revocations(SETTINGS, store, clock)
    spent = refresh_token(store, family="fam")
    successor = dataclasses.replace(refresh_token_record(family="fam"), issued_at=NOW + 1)
    inserted, proceed = threading.Event(), threading.Event()
    refresh_backend = []

    def pause_after_successor_insert(conn, cursor, statement, *args):
        if statement.startswith("INSERT INTO refresh_tokens") and threading.current_thread().name == "refresh":
            refresh_backend.append(conn.connection.dbapi_connection.info.backend_pid)
            inserted.set()
            proceed.wait(10)

    sa.event.listen(store._engine, "after_cursor_execute", pause_after_successor_insert)
    request.addfinalizer(lambda: sa.event.remove(store._engine, "after_cursor_execute", pause_after_successor_insert))
    refreshing = threading.Thread(
        name="refresh", target=store.spend_refresh_token, args=(spent.token_hash, NOW + 1, successor, b"sealed")
    )
    refreshing.start()
    assert inserted.wait(10), "the refresh never reached its insert"
    revoking = threading.Thread(name="revoke", target=revocations.revoke_family, args=("fam",))
    revoking.start()
    try:
        assert _blocked_by(url, refresh_backend[0]), "the revocation never waited for the refresh's row lock"
    finally:
        proceed.set()
        refreshing.join(10)
        revoking.join(10)

    assert revoked(store, spent)
    assert revoked(store, successor), "the successor minted during the revocation is still live"
    assert successor.access_jti in listed(revocations.document(), "jti")


def _blocked_by(url, pid, timeout=10.0) -> bool:
    """Poll until some backend waits for a lock that backend ``pid`` holds."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    deadline = time.monotonic() + timeout
    try:
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                waiting = conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
                    {"pid": pid},
                ).scalar_one()
                conn.rollback()
                if waiting:
                    return True
                time.sleep(0.02)
    finally:
        engine.dispose()
    return False


# --- Redis fan-out ----------------------------------------------------------------------


def test_redis_notifier_publishes_one_json_message_per_entry(store, clock, redis_url):  # noqa: F811
    import redis

    listener = redis.Redis.from_url(redis_url, socket_timeout=5)
    pubsub = listener.pubsub()
    pubsub.subscribe(channel_for(SETTINGS.issuer))
    try:
        assert _subscribed(pubsub)
        revocations = Revocations(SETTINGS, store, clock, RedisNotifier(redis_url, SETTINGS))
        mine = {"jti-" + secrets.token_hex(8), "jti-" + secrets.token_hex(8)}
        sub = "u-" + secrets.token_hex(8)

        stored = revocations.revoke_jtis([(jti, NOW + 100) for jti in sorted(mine)])
        stored += revocations.revoke_subject(sub)

        # The channel is shared with every other test run: keep only our values.
        messages = _collect(pubsub, lambda m: m["value"] in mine | {sub}, count=3)
    finally:
        pubsub.close()
        listener.close()
    assert sorted(messages, key=lambda m: m["version"]) == [
        {"version": e.version, "kind": e.kind, "value": e.value, "before": e.before, "exp": e.exp} for e in stored[:2]
    ] + [
        # A subject entry is published for the token lifetime, as on the list.
        {"version": stored[2].version, "kind": "sub", "value": sub, "before": NOW, "exp": NOW + HORIZON}
    ]
    assert [m["kind"] for m in sorted(messages, key=lambda m: m["version"])] == ["jti", "jti", "sub"]


def test_dead_redis_logs_a_warning_and_the_revocation_still_stands(store, clock, caplog):
    revocations = Revocations(SETTINGS, store, clock, RedisNotifier(DEAD_REDIS_URL, SETTINGS))

    with caplog.at_level(logging.WARNING, logger="authsvc.revocation"):
        entries = revocations.revoke_jtis([("j1", NOW + 100)])

    assert [e.value for e in entries] == ["j1"]
    assert set(listed(revocations.document(), "jti")) == {"j1"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "authsvc.revocation"]
    assert len(warnings) == 1
    assert "fan-out" in warnings[0].getMessage()


def _subscribed(pubsub, timeout=5.0) -> bool:
    """Wait for Redis to confirm the subscription: only then can no publish be missed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is not None and message.get("type") == "subscribe":
            return True
    return False


def _collect(pubsub, wanted, *, count, timeout=5.0) -> list:
    deadline = time.monotonic() + timeout
    found = []
    while len(found) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is None or message.get("type") != "message":
            continue
        body = json.loads(message["data"])
        if wanted(body):
            found.append(body)
    return found

"""The revocation list: polling, ETag, deltas, expiry, staleness, and Redis fan-out."""

from __future__ import annotations

import json
import logging
import os
import socket
import time

import pytest

from authsvc.verify import InvalidToken
from authsvc.verify import RevokedToken
from authsvc.verify import TokenVerifier
from authsvc.verify import VerifierUnavailable
from authsvc.verify._fanout import channel_for

from .conftest import AUDIENCE
from .conftest import eventually


def rejected(verifier, token, exc_type=RevokedToken):
    """A predicate for ``eventually``: true once ``verify`` raises ``exc_type``."""

    def check() -> bool:
        try:
            verifier.verify(token)
        except exc_type:
            return True
        return False

    return check


def accepted(verifier, token):
    def check() -> bool:
        try:
            verifier.verify(token)
        except InvalidToken:
            return False
        return True

    return check


def test_revoked_jti_is_rejected_after_a_poll(issuer, verifier):
    token, other = issuer.mint(), issuer.mint()
    claims = verifier.verify(token)
    issuer.revoke("jti", claims["jti"])
    assert eventually(rejected(verifier, token))
    assert verifier.verify(other)


def test_revoked_sid_is_rejected(issuer, verifier):
    token = issuer.mint(sid="session-1")
    other = issuer.mint(sid="session-2")
    verifier.verify(token)
    issuer.revoke("sid", "session-1")
    assert eventually(rejected(verifier, token))
    assert verifier.verify(other)
    assert verifier.verify(issuer.mint())  # no sid at all


@pytest.mark.parametrize("kind", ["sub", "client_id"])
def test_subject_and_client_revoke_everything_issued_before(issuer, verifier, kind):
    now = int(time.time())
    old = issuer.mint(iat=now - 10, **{kind: "target"})
    bystander = issuer.mint(iat=now - 10, **{kind: "bystander"})
    verifier.verify(old)
    issuer.revoke(kind, "target", before=now - 5)
    assert eventually(rejected(verifier, old))
    assert verifier.verify(bystander)
    # Issued after the revocation (and at its very second): valid.
    assert verifier.verify(issuer.mint(iat=now - 5, **{kind: "target"}))
    assert verifier.verify(issuer.mint(iat=now, **{kind: "target"}))


def test_polls_use_etag_and_deltas(issuer, verifier):
    token = issuer.mint()
    verifier.verify(token)
    assert eventually(lambda: issuer.counts["revocations_304"] >= 2)
    claims = verifier.verify(issuer.mint())
    issuer.revoke("jti", claims["jti"])
    assert eventually(lambda: issuer.counts["revocations_delta"] >= 1)
    assert issuer.counts["revocations_full"] == 1  # only the very first poll
    assert verifier.verify(token)


def test_delta_entries_accumulate(issuer, verifier):
    tokens = [issuer.mint() for _ in range(3)]
    for token in tokens:
        verifier.verify(token)
    for token in tokens:
        jti = verifier.verify(token)["jti"]
        issuer.revoke("jti", jti)
        assert eventually(rejected(verifier, token))
    assert all(rejected(verifier, token)() for token in tokens)
    assert issuer.counts["revocations_delta"] >= 3


def test_a_full_list_replaces_the_state(issuer, verifier):
    token = issuer.mint()
    jti = verifier.verify(token)["jti"]
    issuer.revoke("jti", jti)
    assert eventually(rejected(verifier, token))
    # The issuer answers the next ?since with a full list that no longer has the entry.
    with issuer.lock:
        issuer.changes.clear()
        issuer.version += 1
        issuer.delta_floor = issuer.version + 1
    full = issuer.counts["revocations_full"]
    assert eventually(accepted(verifier, token))
    assert issuer.counts["revocations_full"] > full


def test_a_delta_that_does_not_follow_our_version_forces_a_full_fetch(issuer, verifier):
    token = issuer.mint()
    verifier.verify(token)
    issuer.misreport_since = True
    issuer.revoke("jti", "first")
    assert eventually(lambda: ("jti", "first") in verifier._revocations.snapshot.entries)
    assert issuer.counts["revocations_full"] >= 2  # the bad delta was refused, a full list taken
    issuer.misreport_since = False
    issuer.revoke("jti", verifier.verify(token)["jti"])
    assert eventually(rejected(verifier, token))


def test_expired_entries_are_dropped(issuer, verifier):
    verifier.verify(issuer.mint())
    issuer.revoke("jti", "long-gone", exp=time.time() - 3600)
    issuer.revoke("jti", "still-live")
    issuer.revoke("sub", "old-user", before=time.time() - 7200, exp=time.time() - 3600)
    assert eventually(lambda: verifier._revocations.snapshot.version == issuer.version)
    entries = verifier._revocations.snapshot.entries
    assert ("jti", "still-live") in entries
    assert ("jti", "long-gone") not in entries
    assert ("sub", "old-user") not in entries


def test_a_stale_list_fails_closed(issuer, make_verifier, caplog):
    verifier = make_verifier(revocation_poll_interval=0.05, max_revocation_staleness=0.5)
    token = issuer.mint()
    verifier.verify(token)
    issuer.failing.add("revocations")
    with caplog.at_level(logging.WARNING, logger="authsvc.verify"):
        assert eventually(rejected(verifier, token, VerifierUnavailable))
    assert "fail closed" in caplog.text
    assert token not in caplog.text
    issuer.failing.clear()
    assert eventually(accepted(verifier, token))


def test_a_stale_list_fails_open_when_asked(issuer, make_verifier, caplog):
    verifier = make_verifier(revocation_poll_interval=0.05, max_revocation_staleness=0.3, fail_open=True)
    token, revoked = issuer.mint(), issuer.mint()
    issuer.revoke("jti", verifier.verify(revoked)["jti"])
    assert eventually(rejected(verifier, revoked))
    issuer.failing.add("revocations")
    with caplog.at_level(logging.WARNING, logger="authsvc.verify"):
        time.sleep(0.5)  # longer than max_revocation_staleness: the list is stale now
        assert verifier.verify(token)
    assert "fail_open" in caplog.text
    with pytest.raises(RevokedToken):
        verifier.verify(revoked)  # what was known stays known


def test_unreachable_issuer_at_first_use(issuer):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = issuer.mint()
    with TokenVerifier(f"http://127.0.0.1:{port}", AUDIENCE, http_timeout=0.5, start=False) as verifier:
        with pytest.raises(VerifierUnavailable):
            verifier.verify(token)


def test_discovery_must_name_the_configured_issuer(issuer, make_verifier):
    verifier = make_verifier(issuer=issuer.issuer + "/")
    with pytest.raises(VerifierUnavailable):
        verifier.verify(issuer.mint(iss=issuer.issuer + "/"))


def test_start_false_defers_all_network_until_first_verify(issuer, make_verifier):
    verifier = make_verifier(start=False)
    time.sleep(0.1)
    assert sum(issuer.counts.values()) == 0
    assert verifier.verify(issuer.mint())
    assert issuer.counts["discovery"] == 1


def test_close_stops_polling(issuer, verifier):
    verifier.verify(issuer.mint())
    verifier.close()
    polls = issuer.counts["revocations"]
    time.sleep(0.2)
    assert issuer.counts["revocations"] == polls


def test_unknown_arguments_are_refused(issuer):
    with pytest.raises(ValueError):
        TokenVerifier(issuer.issuer, AUDIENCE, revocation_poll_interval=10, max_revocation_staleness=5, start=False)
    with pytest.raises(ValueError):
        TokenVerifier(issuer.issuer, "", start=False)


# --- Redis fan-out -----------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_client():
    """A Redis client; a missing server skips locally but fails in CI."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis at {REDIS_URL} is unreachable in CI: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    yield client
    client.close()


@pytest.fixture
def fanout_verifier(issuer, make_verifier, redis_client):
    verifier = make_verifier(redis_url=REDIS_URL, revocation_poll_interval=60.0, max_revocation_staleness=300.0)
    verifier.verify(issuer.mint())
    assert verifier._fanout.subscribed.wait(5), "never subscribed to the fan-out channel"
    # Subscribing wakes the poller once; let that poll finish so it cannot explain what follows.
    assert eventually(lambda: issuer.counts["revocations"] >= 2)
    return verifier


def test_fanout_revokes_well_before_the_next_poll(issuer, fanout_verifier, redis_client):
    token = issuer.mint()
    jti = fanout_verifier.verify(token)["jti"]
    polls = issuer.counts["revocations"]
    message = {"version": issuer.version + 1, "kind": "jti", "value": jti, "before": None, "exp": time.time() + 600}
    started = time.monotonic()
    redis_client.publish(channel_for(issuer.issuer), json.dumps(message))
    assert eventually(rejected(fanout_verifier, token), timeout=5)
    assert time.monotonic() - started < 2
    assert issuer.counts["revocations"] == polls  # the hint did it, not a poll


def test_fanout_version_gap_triggers_a_poll(issuer, fanout_verifier, redis_client):
    token = issuer.mint()
    claims = fanout_verifier.verify(token)
    missed = issuer.revoke("sub", claims["sub"], before=time.time() + 1)  # published nowhere
    polls = issuer.counts["revocations"]
    gap = {"version": missed["version"] + 1, "kind": "jti", "value": "other", "before": None, "exp": time.time() + 60}
    redis_client.publish(channel_for(issuer.issuer), json.dumps(gap))
    assert eventually(rejected(fanout_verifier, token), timeout=5)
    assert issuer.counts["revocations"] > polls


def test_malformed_fanout_messages_are_ignored(issuer, fanout_verifier, redis_client):
    token = issuer.mint()
    for junk in ("not json", "[]", json.dumps({"version": "x", "kind": "jti", "value": 1})):
        redis_client.publish(channel_for(issuer.issuer), junk)
    time.sleep(0.2)
    assert fanout_verifier.verify(token)
    assert fanout_verifier._fanout.subscribed.is_set()


def test_fanout_ignores_other_issuers_on_the_same_redis(issuer, fanout_verifier, redis_client):
    token = issuer.mint()
    jti = fanout_verifier.verify(token)["jti"]
    message = {"version": issuer.version + 1, "kind": "jti", "value": jti, "before": None, "exp": time.time() + 600}
    redis_client.publish(channel_for("https://another-issuer.example"), json.dumps(message))
    time.sleep(0.3)
    assert fanout_verifier.verify(token)["jti"] == jti


def test_fanout_reconnects_after_losing_its_connection(issuer, fanout_verifier, redis_client):
    name = f"authsvc.verify:{os.getpid()}"  # ours alone: other processes may be subscribed too

    def subscribers() -> set:
        return {c["id"] for c in redis_client.client_list() if c["name"] == name and "subscribe" in c["cmd"]}

    killed = subscribers()
    assert killed
    for client_id in killed:
        redis_client.client_kill_filter(_id=client_id)
    assert eventually(lambda: subscribers() - killed, timeout=5), "did not resubscribe"
    assert fanout_verifier._fanout.subscribed.wait(5)
    token = issuer.mint()
    jti = fanout_verifier.verify(token)["jti"]
    message = {"version": issuer.version + 1, "kind": "jti", "value": jti, "before": None, "exp": time.time() + 600}
    redis_client.publish(channel_for(issuer.issuer), json.dumps(message))
    assert eventually(rejected(fanout_verifier, token), timeout=5)


def forged_client_hint(version: int, client_id: str = "client-1") -> dict:
    """A fan-out message the issuer never published: revoke every token of a client."""
    now = time.time()
    return {"version": version, "kind": "client_id", "value": client_id, "before": now + 3600, "exp": now + 600}


def test_a_forged_hint_far_ahead_is_dropped_by_the_poll_it_wakes(issuer, fanout_verifier, redis_client):
    token = issuer.mint(iat=int(time.time()) - 10)
    fanout_verifier.verify(token)
    polls = issuer.counts["revocations"]
    redis_client.publish(channel_for(issuer.issuer), json.dumps(forged_client_hint(2**62)))
    # A version far past ours is a gap: it wakes the poller at once, and that poll does not confirm it.
    assert eventually(lambda: issuer.counts["revocations"] > polls, timeout=5)
    assert eventually(accepted(fanout_verifier, token), timeout=5)
    assert fanout_verifier._revocations.snapshot.entries == {}


def test_a_forged_next_version_hint_lasts_only_until_the_next_poll(issuer, fanout_verifier, redis_client):
    token = issuer.mint(iat=int(time.time()) - 10)
    fanout_verifier.verify(token)
    redis_client.publish(channel_for(issuer.issuer), json.dumps(forged_client_hint(issuer.version + 1)))
    assert eventually(rejected(fanout_verifier, token), timeout=5)  # provisional, as a genuine hint is
    polls = issuer.counts["revocations"]
    fanout_verifier._revocations.wake.set()  # the next regular poll, without waiting for it
    assert eventually(lambda: issuer.counts["revocations"] > polls, timeout=5)
    assert eventually(accepted(fanout_verifier, token), timeout=5)
    # …and the version asked for next is the issuer's, not the forger's.
    assert fanout_verifier._revocations.snapshot.version == issuer.version


def test_a_genuine_hint_is_fast_and_the_poll_confirms_it(issuer, fanout_verifier, redis_client):
    token = issuer.mint()
    jti = fanout_verifier.verify(token)["jti"]
    polls = issuer.counts["revocations"]
    started = time.monotonic()
    redis_client.publish(channel_for(issuer.issuer), json.dumps(issuer.revoke("jti", jti)))
    assert eventually(rejected(fanout_verifier, token), timeout=5)
    assert time.monotonic() - started < 2
    assert issuer.counts["revocations"] == polls  # the hint did it, not a poll
    fanout_verifier._revocations.wake.set()
    assert eventually(lambda: issuer.counts["revocations"] > polls, timeout=5)
    assert eventually(lambda: fanout_verifier._revocations.snapshot.version == issuer.version)
    assert rejected(fanout_verifier, token)()


# --- hints against polls, step by step (no threads: each poll is called by hand) ------------


@pytest.fixture
def sync(issuer):
    from authsvc.verify._log import RateLimitedLog
    from authsvc.verify._sync import RevocationSync

    made = RevocationSync(lambda: issuer.issuer + "/revocations", timeout=5.0, leeway=30.0, log=RateLimitedLog())
    assert made.poll()
    return made


def is_revoked(sync, claims) -> bool:
    try:
        sync.snapshot.check(claims)
    except RevokedToken:
        return True
    return False


def old_claims(issuer, **overrides) -> dict:
    return issuer.claims(iat=int(time.time()) - 10, **overrides)


@pytest.mark.parametrize("ahead", [1, 2, 2**62], ids=["next version", "a gap", "far ahead"])
def test_a_hint_the_poll_does_not_confirm_is_dropped(issuer, sync, ahead):
    claims = old_claims(issuer)
    sync.apply_hint(forged_client_hint(issuer.version + ahead))
    assert is_revoked(sync, claims)
    assert sync.wake.is_set() == (ahead > 1)  # a gap asks for a poll at once
    assert sync.poll()
    assert not is_revoked(sync, claims)
    assert sync.snapshot.version == issuer.version and sync.snapshot.entries == {}
    assert sync.poll() and not is_revoked(sync, claims)  # gone for good, not replayed


def test_a_hint_for_a_version_already_served_is_ignored(issuer, sync):
    issuer.revoke("jti", "served")
    assert sync.poll()
    claims = old_claims(issuer)
    sync.apply_hint(forged_client_hint(issuer.version))
    assert not is_revoked(sync, claims)


def test_a_confirmed_hint_stays(issuer, sync):
    claims = old_claims(issuer)
    sync.apply_hint(issuer.revoke("client_id", claims["client_id"]))
    assert is_revoked(sync, claims)
    assert sync.poll()
    assert is_revoked(sync, claims)


def test_a_hint_that_arrives_during_a_poll_waits_for_the_next_one(issuer, sync):
    """The answer on its way may predate the revocation: the hint must outlive it."""
    genuine, forged = old_claims(issuer), old_claims(issuer, client_id="client-2")
    next_version = issuer.version + 1
    url = issuer.issuer + "/revocations"

    def url_while_hints_arrive():
        sync._url = lambda: url
        sync.apply_hint(forged_client_hint(next_version, "client-1"))
        sync.apply_hint(forged_client_hint(next_version + 1, "client-2"))
        return url

    sync._url = url_while_hints_arrive
    assert sync.poll()  # the issuer has listed neither yet
    assert is_revoked(sync, genuine) and is_revoked(sync, forged)
    issuer.revoke("client_id", "client-1", before=time.time() + 3600)  # the first one was genuine
    assert sync.poll()
    assert is_revoked(sync, genuine)
    assert not is_revoked(sync, forged)


def test_a_304_drops_unconfirmed_hints_too(issuer, sync):
    claims = old_claims(issuer)
    polls = issuer.counts["revocations_304"]
    sync.apply_hint(forged_client_hint(issuer.version + 1))
    assert sync.poll()
    assert issuer.counts["revocations_304"] == polls + 1
    assert not is_revoked(sync, claims)


def test_a_malformed_redis_url_fails_at_construction(issuer):
    pytest.importorskip("redis")
    with pytest.raises(ValueError):
        TokenVerifier(issuer.issuer, AUDIENCE, redis_url="nope://127.0.0.1", start=False)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_restarts_the_poller(issuer, verifier):
    # gunicorn --preload builds the app (and the verifier) before forking its workers.
    token = issuer.mint()
    verifier.verify(token)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        status = 1
        try:
            verifier.verify(token)
            # Without the at-fork reset these would be the parent's threads, dead in here.
            alive = [thread.is_alive() for thread in verifier._threads]
            status = 0 if alive and all(alive) else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_polls_are_never_further_apart_than_the_interval():
    """A revocation reaches a polling verifier within revocation_poll_interval: jitter only shortens the wait."""
    verifier = TokenVerifier("http://127.0.0.1:9", AUDIENCE, revocation_poll_interval=5.0)
    delays = [verifier._next_poll_delay() for _ in range(2000)]
    assert 4.0 <= min(delays) and max(delays) <= 5.0
    # Spread, so a fleet of services does not poll in lockstep.
    assert max(delays) - min(delays) > 0.5

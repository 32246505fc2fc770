"""The refresh token grant: rotation on every use, the grace window, and reuse
detection that revokes the whole family (RFC 9700 §4.14.2; SECURITY.md B.25, B.36).

Most tests run in-process with the fake clock; one runs 20 parallel
refreshes against two real gunicorn instances sharing PostgreSQL.
"""

import concurrent.futures
import logging
from dataclasses import replace

import pytest
import requests
import sqlalchemy as sa

from tests import oidc
from tests.conftest import basic_auth
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401
from tests.oidc import keyring_template  # noqa: F401
from tests.oidc import unverified

pytestmark = pytest.mark.usefixtures("fast_hashing")

ISSUER = "http://127.0.0.1:8000"
FULL_SCOPE = "openid profile email offline_access"


@pytest.fixture
def app_client(make_client):
    return make_client(first_party=True)


@pytest.fixture
def tokens(flow, alice, app_client):
    """The first token response of a signed-in user for ``app_client``."""
    record, secret = app_client
    assert flow.login().status_code == 303
    code, verifier, _ = flow.code(record, scope=FULL_SCOPE)
    response = flow.exchange(record, secret, code, verifier)
    assert response.status_code == 200
    return response.get_json()


def refresh(client, app_client, refresh_token, **extra):
    record, secret = app_client
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    headers = basic_auth(record.client_id, secret) if secret else {}
    if not secret:
        data["client_id"] = record.client_id
    return client.post("/token", data=data, headers=headers)


def listed_jtis(client) -> set:
    return {entry["jti"] for entry in client.get("/revocations").get_json()["jti"]}


def assert_invalid_grant(response):
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["error"] == "invalid_grant"
    assert "access_token" not in body


def test_every_refresh_rotates_the_refresh_token(client, app_client, tokens):
    seen = {tokens["refresh_token"]}
    current = tokens["refresh_token"]
    for _ in range(3):
        response = refresh(client, app_client, current)
        assert response.status_code == 200, response.get_json()
        assert response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        assert body["refresh_token"] not in seen
        assert body["access_token"] != tokens["access_token"]
        seen.add(body["refresh_token"])
        current = body["refresh_token"]


def test_refresh_keeps_subject_session_and_scope(client, app_client, tokens):
    body = refresh(client, app_client, tokens["refresh_token"]).get_json()
    old, new = unverified(tokens["access_token"]), unverified(body["access_token"])
    assert new["sub"] == old["sub"] and new["sid"] == old["sid"]
    assert body["scope"] == FULL_SCOPE == new["scope"]


def test_refresh_returns_an_id_token_when_the_scope_has_openid(client, app_client, tokens, alice):
    body = refresh(client, app_client, tokens["refresh_token"]).get_json()

    claims = oidc.jwks_decode(client, body["id_token"], audience=app_client[0].client_id, issuer=ISSUER)
    first = unverified(tokens["id_token"])
    assert claims["sub"] == alice.sub
    assert claims["auth_time"] == first["auth_time"]
    assert claims["sid"] == first["sid"]
    assert claims["at_hash"] == oidc.half_hash(body["access_token"], "RS256")


def test_no_id_token_on_refresh_without_openid(client, flow, alice, app_client):
    record, secret = app_client
    flow.login()
    code, verifier, _ = flow.code(record, scope="profile offline_access")
    first = flow.exchange(record, secret, code, verifier).get_json()

    body = refresh(client, app_client, first["refresh_token"]).get_json()

    assert "id_token" not in body and body["access_token"]


def test_the_just_spent_token_within_the_grace_window_returns_the_same_successor(client, app_client, tokens, clock):
    successor = refresh(client, app_client, tokens["refresh_token"]).get_json()
    clock.advance(4)

    again = refresh(client, app_client, tokens["refresh_token"])

    assert again.status_code == 200
    assert again.get_json() == successor
    # The successor is still the one live token of the family.
    assert refresh(client, app_client, successor["refresh_token"]).status_code == 200


def test_rfc9700_4_14_2_a_thief_replaying_in_the_grace_gets_the_successor_only_while_it_is_unspent(
    client, app_client, tokens, clock
):
    """RFC 9700 §4.14.2: the client spends R1 and gets R2. A thief replaying R1 within
    the grace gets R2 only while nobody has used R2; once the client has spent R2,
    a replay of R1 — still within the grace — revokes the family, newest token included."""
    second = refresh(client, app_client, tokens["refresh_token"]).get_json()
    clock.advance(3)
    stolen = refresh(client, app_client, tokens["refresh_token"])
    assert stolen.status_code == 200 and stolen.get_json() == second  # R2 unspent: a retry, as far as anyone can tell

    third = refresh(client, app_client, second["refresh_token"])
    assert third.status_code == 200
    third = third.get_json()
    clock.advance(1)  # still within the 5 s grace of R1

    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))

    # The family is gone at once: the newest refresh token and every access token.
    assert_invalid_grant(refresh(client, app_client, third["refresh_token"]))
    assert_invalid_grant(refresh(client, app_client, second["refresh_token"]))
    family_jtis = {unverified(t["access_token"])["jti"] for t in (tokens, second, third)}
    assert family_jtis <= listed_jtis(client)


def test_rfc9700_4_14_2_a_thief_who_spent_the_successor_is_caught_by_the_clients_retry(
    client, app_client, tokens, clock
):
    """The reverse order: the thief replays R1 in the grace, gets R2 and spends it
    first; the client's own retry of R1 a second later revokes everything the thief got."""
    second = refresh(client, app_client, tokens["refresh_token"]).get_json()
    clock.advance(2)
    stolen = refresh(client, app_client, tokens["refresh_token"]).get_json()
    thief = refresh(client, app_client, stolen["refresh_token"]).get_json()
    clock.advance(1)

    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))

    assert_invalid_grant(refresh(client, app_client, thief["refresh_token"]))
    assert unverified(thief["access_token"])["jti"] in listed_jtis(client)
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + thief["access_token"]}).status_code == 401
    assert second["refresh_token"] == stolen["refresh_token"]


def test_rfc9700_4_14_2_a_grace_replay_by_another_client_is_refused(client, app_client, tokens, make_client, caplog):
    """The grace is bound to the client the token was issued to: another registered
    client, authenticated with its own secret, gets invalid_grant and nothing else."""
    caplog.set_level(logging.INFO, logger="authsvc.security")
    second = refresh(client, app_client, tokens["refresh_token"]).get_json()
    other = make_client("other", first_party=True)

    response = refresh(client, other, tokens["refresh_token"])

    assert_invalid_grant(response)
    assert second["refresh_token"] not in response.get_data(as_text=True)
    [mismatch] = security_events(caplog, "refresh.client_mismatch")
    assert mismatch.client_id == app_client[0].client_id
    assert mismatch.presenting_client_id == other[0].client_id
    # The rightful client's own secret is still needed, too.
    record, _ = app_client
    wrong = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic_auth(record.client_id, "not-the-secret"),
    )
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    # Neither refusal touched the family: the rightful client carries on.
    assert refresh(client, app_client, second["refresh_token"]).status_code == 200


def test_a_grace_replay_for_a_disabled_user_is_refused(client, services, app_client, tokens, alice):
    refresh(client, app_client, tokens["refresh_token"])
    services.store.update_user(alice.sub, lambda user: replace(user, disabled=True))
    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))


def security_events(caplog, name):
    return [record for record in caplog.records if getattr(record, "event", None) == name]


def test_grace_replays_and_family_revocations_are_security_events_without_tokens(
    client, services, app_client, tokens, clock, alice, caplog
):
    caplog.set_level(logging.INFO, logger="authsvc.security")
    second = refresh(client, app_client, tokens["refresh_token"]).get_json()
    clock.advance(1)
    assert refresh(client, app_client, tokens["refresh_token"]).status_code == 200
    third = refresh(client, app_client, second["refresh_token"]).get_json()
    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))

    family = {"client_id": app_client[0].client_id, "sub": alice.sub, "family_id": family_of(services, tokens)}
    [grace] = security_events(caplog, "refresh.grace_replay")
    [reuse] = security_events(caplog, "refresh.reuse_detected")
    [revoked] = security_events(caplog, "refresh.family_revoked")
    for record in (grace, reuse, revoked):
        assert {name: getattr(record, name) for name in family} == family
    assert reuse.reason == "successor_used" and reuse.levelno == logging.WARNING
    assert revoked.access_tokens == 3

    secrets = [body[kind] for body in (tokens, second, third) for kind in ("refresh_token", "access_token", "id_token")]
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        assert not any(secret in text for secret in secrets), record.getMessage()


def test_reuse_after_the_grace_is_a_security_event(client, app_client, tokens, clock, caplog):
    caplog.set_level(logging.INFO, logger="authsvc.security")
    refresh(client, app_client, tokens["refresh_token"])
    clock.advance(6)

    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))

    [reuse] = security_events(caplog, "refresh.reuse_detected")
    assert reuse.reason == "grace_over"
    assert security_events(caplog, "refresh.family_revoked")
    assert not security_events(caplog, "refresh.grace_replay")


def family_of(services, body) -> str:
    return services.store.get_refresh_token(oidc_hash(body["refresh_token"])).family_id


def test_reuse_after_the_grace_window_revokes_the_whole_family(client, app_client, tokens, clock):
    second = refresh(client, app_client, tokens["refresh_token"]).get_json()
    third = refresh(client, app_client, second["refresh_token"]).get_json()
    family_jtis = {unverified(t["access_token"])["jti"] for t in (tokens, second, third)}
    assert not family_jtis & listed_jtis(client)
    clock.advance(11)

    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))

    # The newest refresh token dies with the family, and every access token is listed.
    assert_invalid_grant(refresh(client, app_client, third["refresh_token"]))
    assert family_jtis <= listed_jtis(client)
    for body in (tokens, second, third):
        userinfo = client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
        assert userinfo.status_code == 401


def test_reuse_detection_holds_for_an_older_ancestor_too(client, app_client, tokens, clock):
    second = refresh(client, app_client, tokens["refresh_token"]).get_json()
    clock.advance(30)
    third = refresh(client, app_client, second["refresh_token"]).get_json()

    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))
    assert_invalid_grant(refresh(client, app_client, third["refresh_token"]))


def test_grace_replay_of_a_revoked_family_is_refused(client, app_client, tokens, clock):
    second = refresh(client, app_client, tokens["refresh_token"]).get_json()
    client.post(
        "/revoke", data={"token": second["refresh_token"]}, headers=basic_auth(app_client[0].client_id, app_client[1])
    )

    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))


def test_the_rotation_works_for_public_clients(client, flow, alice, make_client):
    record, _ = make_client("spa", public=True, first_party=True)
    flow.login()
    code, verifier, _ = flow.code(record)
    first = flow.exchange(record, None, code, verifier).get_json()
    second = refresh(client, (record, None), first["refresh_token"])
    assert second.status_code == 200
    assert second.get_json()["refresh_token"] != first["refresh_token"]


def test_wider_scope_is_invalid_scope(client, flow, alice, app_client):
    record, secret = app_client
    flow.login()
    code, verifier, _ = flow.code(record, scope="openid offline_access")
    first = flow.exchange(record, secret, code, verifier).get_json()

    for wider in ("openid offline_access email", "openid offline_access admin"):
        response = refresh(client, app_client, first["refresh_token"], scope=wider)
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_scope"
    # A refused request spends nothing.
    assert refresh(client, app_client, first["refresh_token"]).status_code == 200


def test_narrower_scope_narrows_the_access_token_not_the_grant(client, app_client, tokens):
    narrow = refresh(client, app_client, tokens["refresh_token"], scope="openid")
    assert narrow.status_code == 200
    body = narrow.get_json()
    assert body["scope"] == "openid"
    assert unverified(body["access_token"])["scope"] == "openid"

    full = refresh(client, app_client, body["refresh_token"]).get_json()
    assert full["scope"] == FULL_SCOPE


def test_huge_scope_is_a_fast_400(client, app_client, tokens):
    response = refresh(client, app_client, tokens["refresh_token"], scope="openid " * 20000)
    assert response.status_code in (400, 413)


def test_refresh_token_of_another_client_is_invalid_grant_and_spends_nothing(client, app_client, tokens, make_client):
    other = make_client("other", first_party=True)
    assert_invalid_grant(refresh(client, other, tokens["refresh_token"]))
    assert refresh(client, app_client, tokens["refresh_token"]).status_code == 200


def test_refresh_token_of_a_disabled_user_is_invalid_grant(client, cli, app_client, tokens, alice):
    code, _, err = cli("users", "disable", alice.username, "--json")
    assert code == 0, err
    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))


def test_disabled_user_is_refused_even_before_any_revocation(client, services, app_client, tokens, alice):
    # Only the flag, without the revocations the CLI also makes: the grant checks the user itself.
    services.store.update_user(alice.sub, lambda user: replace(user, disabled=True))
    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))


def test_refresh_token_of_a_deleted_client_gets_no_tokens(client, cli, app_client, tokens):
    code, _, err = cli("clients", "delete", app_client[0].client_id, "--json")
    assert code == 0, err

    response = refresh(client, app_client, tokens["refresh_token"])

    # The client cannot even authenticate any more (RFC 6749 §5.2 invalid_client);
    # either way, nothing is issued.
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] in ("invalid_grant", "invalid_client")
    assert "access_token" not in response.get_json()


def test_expired_refresh_token_is_invalid_grant(client, app_client, tokens, clock, settings):
    clock.advance(settings.refresh_token_ttl + 1)
    assert_invalid_grant(refresh(client, app_client, tokens["refresh_token"]))


@pytest.mark.parametrize("token", ["", "x", "not-a-token" * 100, "\u00e9" * 10])
def test_garbage_refresh_tokens_are_invalid(client, app_client, token):
    response = refresh(client, app_client, token)
    assert response.status_code == 400
    assert response.get_json()["error"] in ("invalid_grant", "invalid_request")


def test_refresh_token_is_not_an_access_token(client, app_client, tokens):
    response = client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["refresh_token"]})
    assert response.status_code == 401


# -- across instances --------------------------------------------------------


def test_parallel_refreshes_across_two_instances_get_one_successor(pg_pair):
    a, b = pg_pair.instances
    url = pg_pair.database_url
    carol = pg_pair.user("carol")
    registered = pg_pair.client("--redirect-uri", "https://rp.example/cb", "--first-party")
    client_id, secret = registered["client_id"], registered["client_secret"]
    code, verifier = oidc.http_code(a.url, client_id, "https://rp.example/cb", FULL_SCOPE, carol)
    first = requests.post(
        b.url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://rp.example/cb",
            "code_verifier": verifier,
        },
        auth=(client_id, secret),
        timeout=30,
    ).json()
    spent = first["refresh_token"]

    def one(i):
        target = (a, b)[i % 2]
        return requests.post(
            target.url + "/token",
            data={"grant_type": "refresh_token", "refresh_token": spent},
            auth=(client_id, secret),
            timeout=30,
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(one, range(20)))

    statuses = [r.status_code for r in responses]
    assert statuses == [200] * 20, [(r.status_code, r.text[:200]) for r in responses]
    successors = {r.json()["refresh_token"] for r in responses}
    assert len(successors) == 1
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            family = conn.execute(
                sa.text("SELECT family_id FROM refresh_tokens WHERE token_hash = :h"),
                {"h": oidc_hash(spent)},
            ).scalar_one()
            count = conn.execute(
                sa.text("SELECT count(*) FROM refresh_tokens WHERE family_id = :f"), {"f": family}
            ).scalar_one()
    finally:
        engine.dispose()
    # The spent token and exactly one successor.
    assert count == 2
    # And the one successor works on either instance.
    assert one(1).status_code == 200
    follow = requests.post(
        a.url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": successors.pop()},
        auth=(client_id, secret),
        timeout=30,
    )
    assert follow.status_code == 200


def test_replays_after_the_successor_was_spent_are_refused_on_every_instance(pg_pair):
    """RFC 9700 §4.14.2 across instances: once R2 is spent (on one instance), 20 parallel
    replays of R1 on both instances, within the grace, all get invalid_grant and the
    newest token dies with its family."""
    a, b = pg_pair.instances
    dave = pg_pair.user("dave")
    registered = pg_pair.client("--redirect-uri", "https://rp.example/cb", "--first-party")
    client_id, secret = registered["client_id"], registered["client_secret"]
    code, verifier = oidc.http_code(a.url, client_id, "https://rp.example/cb", FULL_SCOPE, dave)

    def token(instance, **data):
        return requests.post(instance.url + "/token", data=data, auth=(client_id, secret), timeout=30)

    first = token(
        b, grant_type="authorization_code", code=code, redirect_uri="https://rp.example/cb", code_verifier=verifier
    ).json()
    second = token(a, grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    third = token(b, grant_type="refresh_token", refresh_token=second["refresh_token"]).json()

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        replays = list(
            pool.map(
                lambda i: token((a, b)[i % 2], grant_type="refresh_token", refresh_token=first["refresh_token"]),
                range(20),
            )
        )

    assert [r.status_code for r in replays] == [400] * 20, [(r.status_code, r.text[:200]) for r in replays]
    assert {r.json()["error"] for r in replays} == {"invalid_grant"}
    newest = token(a, grant_type="refresh_token", refresh_token=third["refresh_token"])
    assert newest.status_code == 400 and newest.json()["error"] == "invalid_grant"


def oidc_hash(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()

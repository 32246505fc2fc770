"""The device authorization grant (RFC 8628) at /device_authorization and /token.

Test names carry the RFC's section numbers. The user's side (/device) is in
tests/web/test_device_page.py; the store's atomic steps in tests/test_device_codes.py.
"""

import json
from dataclasses import replace

import jwt
import pytest

from authsvc.oauth.device import USER_CODE_ALPHABET
from authsvc.oauth.issuance import secret_hash
from tests.device_calls import DEVICE_GRANT
from tests.device_calls import FORM
from tests.device_calls import csrf_of
from tests.device_calls import decide
from tests.device_calls import make_device_client
from tests.device_calls import poll
from tests.device_calls import start
from tests.device_calls import started
from tests.oauth_calls import quick_user
from tests.oauth_calls import refresh


@pytest.fixture
def tv(make_client):
    return make_device_client(make_client)


@pytest.fixture
def user(services):
    return quick_user(services)


@pytest.fixture
def signed_in(flow, user):
    response = flow.login()
    assert response.status_code == 303
    return flow.client


def error_of(response):
    return response.status_code, response.json["error"]


def claims(token):
    return jwt.decode(token, options={"verify_signature": False})


# §3.1 / §3.2 — the device authorization request and response


def test_3_2_response_has_codes_uris_lifetime_and_interval(client, tv, settings):
    rp, secret = tv
    response = start(client, rp, secret, scope="openid profile")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert body["verification_uri"] == settings.issuer + "/device"
    assert body["verification_uri_complete"] == f"{settings.issuer}/device?user_code={body['user_code']}"
    assert body["expires_in"] == 600 and body["interval"] == 5


def test_6_1_user_codes_are_xxxx_xxxx_from_an_unambiguous_alphabet(client, tv):
    rp, secret = tv
    codes = {started(client, rp, secret)["user_code"] for _ in range(20)}
    assert len(codes) == 20
    for code in codes:
        first, second = code.split("-")
        assert len(first) == len(second) == 4
        assert set(first + second) <= set(USER_CODE_ALPHABET)
    assert not set("AEIOUY01") & set(USER_CODE_ALPHABET)


def test_6_1_device_codes_are_256_bit_random_and_stored_only_hashed(client, tv, services):
    rp, secret = tv
    body = started(client, rp, secret)
    assert len(body["device_code"]) >= 43  # 32 bytes, base64url
    record = services.store.get_device_code_by_user_code(body["user_code"].replace("-", ""))
    assert record.device_code_hash == secret_hash(body["device_code"])
    assert body["device_code"] not in repr(record)


def test_3_1_confidential_client_authenticates_as_at_the_token_endpoint(client, make_client):
    rp, secret = make_device_client(make_client, public=False)
    assert start(client, rp, secret).status_code == 200
    assert error_of(start(client, rp, "wrong")) == (401, "invalid_client")
    # A confidential client may not fall back to client_id alone.
    assert error_of(client.post("/device_authorization", data={"client_id": rp.client_id})) == (401, "invalid_client")


def test_3_1_unknown_client_is_invalid_client(client):
    assert error_of(client.post("/device_authorization", data={"client_id": "c_nobody"}))[1] == "invalid_client"
    assert error_of(client.post("/device_authorization", data={}, content_type=FORM))[1] == "invalid_client"


def test_3_1_a_client_not_registered_for_the_grant_is_unauthorized(client, make_client):
    rp, secret = make_client("web app")
    assert error_of(start(client, rp, secret)) == (400, "unauthorized_client")


def test_3_1_scope_is_limited_to_what_the_client_may_ask(client, tv, services):
    rp, secret = tv
    body = started(client, rp, secret, scope="openid admin:all profile openid")
    record = services.store.get_device_code_by_user_code(body["user_code"].replace("-", ""))
    assert record.scope == "openid profile"


def test_3_1_unknown_resource_is_refused_before_the_user_is_asked(client, tv):
    rp, secret = tv
    response = start(client, rp, secret, resource="https://elsewhere.example")
    assert error_of(response) == (400, "invalid_target")


@pytest.mark.parametrize(
    "fields",
    [
        {"scope": ["openid", "profile"]},  # repeated parameter
        {"scope": "a\x00b"},
        {"scope": "x" * 5000},
    ],
)
def test_3_1_malformed_requests_are_400(client, tv, fields):
    rp, secret = tv
    response = start(client, rp, secret, **fields)
    assert error_of(response) == (400, "invalid_request")


def test_3_1_query_string_and_json_bodies_are_refused(client, tv):
    rp, _ = tv
    response = client.post(f"/device_authorization?client_id={rp.client_id}")
    assert response.status_code == 400
    response = client.post("/device_authorization", json={"client_id": rp.client_id})
    assert error_of(response) == (400, "invalid_request")
    assert client.get("/device_authorization").status_code == 405


# §3.4 / §3.5 — polling the token endpoint


def test_3_5_authorization_pending_until_the_user_decides(client, tv, clock):
    rp, secret = tv
    body = started(client, rp, secret)
    for _ in range(3):
        assert error_of(poll(client, rp, secret, body["device_code"])) == (400, "authorization_pending")
        clock.advance(body["interval"])


def test_3_5_slow_down_when_polled_sooner_than_the_interval_and_the_interval_grows(client, tv, clock, services):
    rp, secret = tv
    body = started(client, rp, secret)
    code = body["device_code"]
    assert error_of(poll(client, rp, secret, code))[1] == "authorization_pending"
    clock.advance(4)
    assert error_of(poll(client, rp, secret, code))[1] == "slow_down"
    # The interval is now 10 s, counted from the last poll that kept to the old one.
    clock.advance(5)  # 9 s after it
    assert error_of(poll(client, rp, secret, code))[1] == "slow_down"
    # Two slow_downs: 15 s. A device that keeps to it is served again.
    clock.advance(6)  # 15 s after it
    assert error_of(poll(client, rp, secret, code))[1] == "authorization_pending"
    record = services.store.get_device_code_by_user_code(body["user_code"].replace("-", ""))
    assert record.interval == 15
    clock.advance(14)
    assert error_of(poll(client, rp, secret, code))[1] == "slow_down"


def test_3_5_expired_token_after_expires_in(client, tv, clock):
    rp, secret = tv
    body = started(client, rp, secret)
    clock.advance(body["expires_in"])
    assert error_of(poll(client, rp, secret, body["device_code"])) == (400, "expired_token")
    clock.advance(600)
    assert error_of(poll(client, rp, secret, body["device_code"])) == (400, "expired_token")


def test_3_5_access_denied_when_the_user_denies(client, tv, signed_in, clock):
    rp, secret = tv
    body = started(client, rp, secret)
    assert decide(signed_in, body["user_code"], "deny").status_code == 200
    clock.advance(5)
    assert error_of(poll(client, rp, secret, body["device_code"])) == (400, "access_denied")


def test_3_5_tokens_once_after_approval_then_invalid_grant(client, tv, signed_in, clock, user, settings):
    rp, secret = tv
    body = started(client, rp, secret)
    decide(signed_in, body["user_code"], "allow")
    clock.advance(5)
    response = poll(client, rp, secret, body["device_code"])
    assert response.status_code == 200, response.json
    token = response.json
    assert token["token_type"] == "Bearer" and token["scope"] == "openid profile offline_access"
    access = claims(token["access_token"])
    assert access["sub"] == user.sub and access["client_id"] == rp.client_id and access["sid"]
    id_token = claims(token["id_token"])
    assert id_token["aud"] == rp.client_id and id_token["sub"] == user.sub
    assert id_token["preferred_username"] == "alice" and "nonce" not in id_token
    assert token["refresh_token"]
    clock.advance(5)
    assert error_of(poll(client, rp, secret, body["device_code"])) == (400, "invalid_grant")


def test_3_5_a_too_early_poll_after_approval_still_gets_its_tokens(client, tv, signed_in, clock):
    """slow_down is a variant of authorization_pending: once decided, the answer is the decision."""
    rp, secret = tv
    body = started(client, rp, secret)
    assert error_of(poll(client, rp, secret, body["device_code"]))[1] == "authorization_pending"
    decide(signed_in, body["user_code"], "allow")
    assert poll(client, rp, secret, body["device_code"]).status_code == 200


def test_3_5_the_refresh_token_follows_the_offline_access_rule(client, tv, signed_in, clock):
    rp, secret = tv
    body = started(client, rp, secret, scope="openid profile")
    decide(signed_in, body["user_code"])
    token = poll(client, rp, secret, body["device_code"]).json
    assert "access_token" in token and "refresh_token" not in token


def test_3_5_the_refresh_token_works_and_rotates(client, tv, signed_in):
    rp, secret = tv
    body = started(client, rp, secret, scope="profile offline_access")
    decide(signed_in, body["user_code"])
    token = poll(client, rp, secret, body["device_code"]).json
    assert "id_token" not in token
    refreshed = refresh(client, rp, secret, token["refresh_token"])
    assert refreshed.status_code == 200, refreshed.json
    assert refreshed.json["refresh_token"] != token["refresh_token"]


def test_3_4_confidential_device_client_polls_with_its_secret(client, make_client, signed_in):
    rp, secret = make_device_client(make_client, public=False)
    body = started(client, rp, secret)
    decide(signed_in, body["user_code"])
    assert error_of(poll(client, rp, "wrong", body["device_code"])) == (401, "invalid_client")
    assert poll(client, rp, secret, body["device_code"]).status_code == 200


def test_3_4_a_device_code_is_good_only_for_the_client_it_was_issued_to(client, tv, make_client, signed_in):
    rp, secret = tv
    other, other_secret = make_device_client(make_client, name="Other TV")
    body = started(client, rp, secret)
    decide(signed_in, body["user_code"])
    assert error_of(poll(client, other, other_secret, body["device_code"])) == (400, "invalid_grant")
    # The rightful device still gets its tokens.
    assert poll(client, rp, secret, body["device_code"]).status_code == 200


def test_3_4_a_client_not_registered_for_the_grant_cannot_poll(client, make_client):
    rp, secret = make_client("web app")
    assert error_of(poll(client, rp, secret, "x" * 43)) == (400, "unauthorized_client")


@pytest.mark.parametrize(
    "device_code, error",
    [
        ("", "invalid_request"),
        ("not-a-device-code", "invalid_grant"),
        ("A" * 4096, "invalid_grant"),
        ("A" * 4097, "invalid_request"),
        ("\u00e9\u2603\U0001f600", "invalid_grant"),
        ("a\x00b", "invalid_request"),
        (["one", "two"], "invalid_request"),  # repeated
    ],
)
def test_3_4_malformed_or_unknown_device_codes_are_400(client, tv, device_code, error):
    rp, secret = tv
    assert error_of(poll(client, rp, secret, device_code)) == (400, error)


def test_3_4_without_device_code_is_invalid_request(client, tv):
    rp, _ = tv
    response = client.post("/token", data={"grant_type": DEVICE_GRANT, "client_id": rp.client_id})
    assert error_of(response) == (400, "invalid_request")


def test_3_5_a_logged_out_session_yields_no_tokens(client, tv, signed_in, flow):
    """Like a code, the grant is tied to the browser session that approved it."""
    rp, secret = tv
    body = started(client, rp, secret)
    decide(signed_in, body["user_code"])
    page = signed_in.get("/logout")
    signed_in.post("/logout", data={"csrf_token": csrf_of(page)})
    assert error_of(poll(client, rp, secret, body["device_code"])) == (400, "invalid_grant")


def test_3_5_a_disabled_user_yields_no_tokens(client, tv, signed_in, services, user):
    rp, secret = tv
    body = started(client, rp, secret)
    decide(signed_in, body["user_code"])
    services.store.update_user(user.sub, lambda u: replace(u, disabled=True))
    assert error_of(poll(client, rp, secret, body["device_code"])) == (400, "invalid_grant")


# Discovery and registration


def test_discovery_lists_the_endpoint_and_the_grant(client, settings):
    doc = client.get("/.well-known/openid-configuration").json
    assert doc["device_authorization_endpoint"] == settings.issuer + "/device_authorization"
    assert DEVICE_GRANT in doc["grant_types_supported"]


def test_clients_create_accepts_the_device_grant_without_a_redirect_uri(cli, store):
    code, out, err = cli(
        "clients",
        "create",
        "--name",
        "TV",
        "--public",
        "--grant-type",
        DEVICE_GRANT,
        "--grant-type",
        "refresh_token",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["client_id"]
    code, out, _ = cli("clients", "list", "--json")
    assert json.loads(out)[0]["grant_types"] == [DEVICE_GRANT, "refresh_token"]

"""Token revocation, RFC 7009, at ``revocation_endpoint``.

https://www.rfc-editor.org/rfc/rfc7009 — a client revokes its own access or
refresh token; an access token's ``jti`` is listed until it expires; a
refresh token takes its whole family and the access tokens it produced
with it. Invalid tokens answer 200; a store failure never does
(SECURITY.md B.34, fosite CVE-2020-15223).
"""

import pytest

from authsvc.app import create_app
from authsvc.errors import StoreUnavailable
from authsvc.services import build
from tests.conftest import Flow
from tests.conftest import basic_auth
from tests.oauth_calls import claims_of
from tests.oauth_calls import is_active
from tests.oauth_calls import quick_user
from tests.oauth_calls import refresh
from tests.oauth_calls import revoke
from tests.oauth_calls import user_tokens
from tests.oauth_calls import userinfo_status
from tests.services_available import DEAD_REDIS_URL

DEAD_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/test"


@pytest.fixture
def rp(services, make_client):
    quick_user(services)
    return make_client("relying party")


@pytest.fixture
def other_rp(make_client):
    return make_client("another app")


@pytest.fixture
def tokens(flow, rp):
    client, secret = rp
    return user_tokens(flow, client, secret)


def revocation_list(client) -> dict:
    response = client.get("/revocations")
    assert response.status_code == 200
    return response.json


def listed_jtis(client) -> dict:
    return {entry["jti"]: entry["exp"] for entry in revocation_list(client)["jti"]}


def test_revoking_an_access_token_lists_its_jti_until_it_expires(client, rp, tokens, clock, settings):
    rp_client, secret = rp
    access = tokens["access_token"]
    claims = claims_of(access)

    response = revoke(client, rp_client, secret, access, token_type_hint="access_token")

    assert response.status_code == 200
    assert response.json == {}
    assert response.headers["Cache-Control"] == "no-store"
    assert not is_active(client, rp_client, secret, access)
    assert userinfo_status(client, access) == 401
    listed = listed_jtis(client)
    assert claims["jti"] in listed
    # Listed at least as long as any verifier (exp + leeway) could accept the token.
    assert listed[claims["jti"]] >= claims["exp"] + settings.leeway

    clock.advance(claims["exp"] + settings.leeway - clock())
    assert claims["jti"] not in listed_jtis(client)


def test_revoking_a_token_just_past_exp_lists_it_while_verifiers_still_accept_it(client, rp, tokens, clock, settings):
    # Verifiers allow `leeway` seconds past exp for clock skew; the token is still usable there.
    rp_client, secret = rp
    claims = claims_of(tokens["access_token"])
    clock.advance(claims["exp"] - clock() + settings.leeway // 2)

    assert revoke(client, rp_client, secret, tokens["access_token"]).status_code == 200

    assert listed_jtis(client).get(claims["jti"]) == claims["exp"] + settings.leeway


def test_revoking_an_access_token_leaves_other_tokens_alone(client, flow, rp, tokens):
    rp_client, secret = rp
    second = user_tokens(flow, rp_client, secret, login=False)

    revoke(client, rp_client, secret, tokens["access_token"])

    assert is_active(client, rp_client, secret, second["access_token"])
    assert is_active(client, rp_client, secret, tokens["refresh_token"])


def test_revoking_a_refresh_token_revokes_its_family_and_their_access_tokens(client, rp, tokens):
    rp_client, secret = rp
    rotated = refresh(client, rp_client, secret, tokens["refresh_token"])
    assert rotated.status_code == 200
    newest = rotated.json

    response = revoke(client, rp_client, secret, newest["refresh_token"], token_type_hint="refresh_token")

    assert response.status_code == 200
    for access in (tokens["access_token"], newest["access_token"]):
        assert not is_active(client, rp_client, secret, access)
        assert claims_of(access)["jti"] in listed_jtis(client)
    assert not is_active(client, rp_client, secret, newest["refresh_token"])
    again = refresh(client, rp_client, secret, newest["refresh_token"])
    assert again.status_code == 400
    assert again.json["error"] == "invalid_grant"


def test_revoking_a_spent_refresh_token_still_revokes_the_family(client, rp, tokens):
    rp_client, secret = rp
    newest = refresh(client, rp_client, secret, tokens["refresh_token"]).json

    assert revoke(client, rp_client, secret, tokens["refresh_token"]).status_code == 200

    assert refresh(client, rp_client, secret, newest["refresh_token"]).json["error"] == "invalid_grant"
    assert not is_active(client, rp_client, secret, newest["access_token"])


@pytest.mark.parametrize("hint", ["access_token", "refresh_token"])
def test_a_wrong_hint_does_not_stop_revocation(client, rp, tokens, hint):
    # RFC 7009 §2.1: a server that cannot find the token by its hint searches every type.
    rp_client, secret = rp
    token = tokens["refresh_token" if hint == "access_token" else "access_token"]

    assert revoke(client, rp_client, secret, token, token_type_hint=hint).status_code == 200

    assert not is_active(client, rp_client, secret, token)


def test_unknown_or_garbage_tokens_answer_200_and_change_nothing(client, rp, tokens):
    # RFC 7009 §2.2: an invalid token is no error; the client's purpose is achieved.
    rp_client, secret = rp
    before = revocation_list(client)

    for garbage in ("unknown-token", "", "a.b.c", "eyJhbGciOiJub25lIn0.eyJqdGkiOiJ4In0.", "x" * 3000, "Ω≈ç√∫"):
        response = revoke(client, rp_client, secret, garbage)

        assert response.status_code == 200, garbage
        assert response.json == {}, garbage
    assert revocation_list(client) == before
    assert is_active(client, rp_client, secret, tokens["access_token"])


def test_missing_token_parameter_is_invalid_request(client, rp):
    rp_client, secret = rp
    headers = basic_auth(rp_client.client_id, secret)

    response = client.post("/revoke", data={"token_type_hint": "access_token"}, headers=headers)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize("kind", ["access_token", "refresh_token"])
def test_a_client_cannot_revoke_another_clients_token(client, rp, other_rp, tokens, kind):
    rp_client, secret = rp
    thief, thief_secret = other_rp
    before = revocation_list(client)

    response = revoke(client, thief, thief_secret, tokens[kind])

    assert response.status_code in (200, 400)
    assert revocation_list(client) == before
    assert is_active(client, rp_client, secret, tokens[kind])
    assert is_active(client, rp_client, secret, tokens["access_token"])
    assert refresh(client, rp_client, secret, tokens["refresh_token"]).status_code == 200


def test_unauthenticated_revocation_is_refused_with_401(client, rp, tokens):
    rp_client, secret = rp
    token = tokens["access_token"]
    attempts = {
        "no credentials": ({"token": token}, {}),
        "wrong secret": ({"token": token}, basic_auth(rp_client.client_id, secret + "x")),
        "unknown client": ({"token": token}, basic_auth("c_nobody", secret)),
        "confidential client without its secret": ({"token": token, "client_id": rp_client.client_id}, {}),
    }

    for how, (form, headers) in attempts.items():
        response = client.post("/revoke", data=form, headers=headers)

        assert response.status_code == 401, how
        assert response.json["error"] == "invalid_client", how
        assert "WWW-Authenticate" in response.headers, how
    assert is_active(client, rp_client, secret, token)
    assert revocation_list(client)["version"] == 0


def test_a_public_client_can_revoke_its_own_tokens(client, flow, services, make_client):
    quick_user(services)
    spa, _ = make_client("single-page app", public=True)
    tokens = user_tokens(flow, spa, None)

    for kind in ("access_token", "refresh_token"):
        response = revoke(client, spa, None, tokens[kind])
        assert response.status_code == 200, response.json

    assert userinfo_status(client, tokens["access_token"]) == 401
    assert refresh(client, spa, None, tokens["refresh_token"]).json["error"] == "invalid_grant"


def test_a_public_client_cannot_revoke_a_confidential_clients_token(client, flow, rp, tokens, make_client):
    rp_client, secret = rp
    spa, _ = make_client("single-page app", public=True)

    revoke(client, spa, None, tokens["access_token"])

    assert is_active(client, rp_client, secret, tokens["access_token"])


# --- store failures: 503 with Retry-After, never a 200 that revoked nothing -------------------


@pytest.mark.parametrize(
    ("kind", "method"),
    [
        ("access_token", "add_revocations"),
        ("refresh_token", "revoke_family"),
        ("refresh_token", "get_refresh_token"),
        ("access_token", "is_listed"),
    ],
)
def test_a_store_failure_answers_503_never_200(client, services, rp, tokens, monkeypatch, kind, method):
    rp_client, secret = rp

    def unavailable(*args, **kwargs):
        raise StoreUnavailable("database unavailable: simulated")

    with monkeypatch.context() as patch:
        patch.setattr(services.store, method, unavailable)
        response = revoke(client, rp_client, secret, tokens[kind], token_type_hint=kind)

    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.json["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    # The client was told to retry, and the token is indeed still live.
    assert is_active(client, rp_client, secret, tokens[kind])


@pytest.fixture
def dead_store_client(settings, clock, keyring):
    """The app with a PostgreSQL URL on which nothing listens."""
    services = build(settings.with_overrides(database_url=DEAD_DATABASE_URL), clock=clock, keyring=keyring)
    yield create_app(services=services).test_client()
    services.close()


@pytest.mark.parametrize(
    "request_args",
    [
        pytest.param(("post", "/token", {"grant_type": "client_credentials"}), id="token"),
        pytest.param(("post", "/revoke", {"token": "anything"}), id="revoke"),
        pytest.param(("post", "/introspect", {"token": "anything"}), id="introspect"),
        pytest.param(("get", "/readyz", None), id="readyz"),
        pytest.param(("get", "/revocations", None), id="revocation-list"),
    ],
)
def test_a_dead_database_makes_store_endpoints_503(dead_store_client, request_args):
    method, path, form = request_args

    response = getattr(dead_store_client, method)(path, data=form, headers=basic_auth("c_someone", "secret"))

    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert int(response.headers["Retry-After"]) > 0
    if path != "/readyz":
        assert response.json["error"] == "temporarily_unavailable"


def test_a_dead_redis_never_fails_a_revocation(settings, clock, keyring, flow, make_client):
    # Redis only fans entries out; the database holds the list, so revocation must not depend on it.
    services = build(settings.with_overrides(redis_url=DEAD_REDIS_URL), clock=clock, keyring=keyring)
    try:
        client = create_app(services=services).test_client()
        rp_client, secret = make_client("relying party")
        quick_user(services)
        tokens = user_tokens(Flow(client), rp_client, secret)

        response = revoke(client, rp_client, secret, tokens["refresh_token"])

        assert response.status_code == 200
        assert not is_active(client, rp_client, secret, tokens["access_token"])
        assert claims_of(tokens["access_token"])["jti"] in listed_jtis(client)
    finally:
        services.close()


@pytest.mark.parametrize(
    "path", ["/healthz", "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", "/jwks.json"]
)
def test_a_dead_database_leaves_health_discovery_and_jwks_up(dead_store_client, path):
    response = dead_store_client.get(path)

    assert response.status_code == 200
    if path == "/jwks.json":
        assert response.json["keys"]


def test_a_dead_database_does_not_leak_its_url_or_driver_error(dead_store_client):
    response = dead_store_client.post("/revoke", data={"token": "x"}, headers=basic_auth("c_someone", "secret"))

    body = response.get_data(as_text=True)
    assert "127.0.0.1:1" not in body
    assert "psycopg" not in body


def test_revocation_takes_form_posts_only(client, rp, tokens):
    rp_client, secret = rp
    headers = basic_auth(rp_client.client_id, secret)

    as_json = client.post("/revoke", json={"token": tokens["access_token"]}, headers=headers)
    as_get = client.get("/revoke?token=" + tokens["access_token"], headers=headers)

    assert as_json.status_code == 400
    assert as_json.json["error"] == "invalid_request"
    assert as_get.status_code == 405
    assert is_active(client, rp_client, secret, tokens["access_token"])

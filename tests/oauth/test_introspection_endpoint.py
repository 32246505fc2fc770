"""Token introspection, RFC 7662, at ``introspection_endpoint``.

https://www.rfc-editor.org/rfc/rfc7662 — only an authenticated client may
ask; a live token it may see answers ``active: true`` with its claims, and
anything else (revoked, expired, foreign, garbage, an ID token, a spent
refresh token, or a token the caller has no business seeing) answers exactly
``{"active": false}``, so the answer never tells which of those it was
(SECURITY.md B.34).
"""

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import basic_auth
from tests.oauth_calls import claims_of
from tests.oauth_calls import introspect
from tests.oauth_calls import quick_user
from tests.oauth_calls import refresh
from tests.oauth_calls import revoke
from tests.oauth_calls import user_tokens

INACTIVE = {"active": False}


def answer(client, rp, token, **extra) -> dict:
    rp_client, secret = rp
    response = introspect(client, rp_client, secret, token, **extra)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


# --- who may ask ----------------------------------------------------------------------


def test_an_unauthenticated_caller_gets_401_and_no_answer(client, rp, tokens):
    rp_client, secret = rp
    token = tokens["access_token"]
    attempts = {
        "no credentials": ({"token": token}, {}),
        "wrong secret": ({"token": token}, basic_auth(rp_client.client_id, "not-the-secret")),
        "unknown client": ({"token": token}, basic_auth("c_nobody", secret)),
        "client_id only": ({"token": token, "client_id": rp_client.client_id}, {}),
    }

    for how, (form, headers) in attempts.items():
        response = client.post("/introspect", data=form, headers=headers)

        assert response.status_code == 401, how
        assert response.json["error"] == "invalid_client", how
        assert "active" not in response.json, how
        assert "WWW-Authenticate" in response.headers, how


def test_a_public_client_cannot_introspect(client, flow, services, make_client):
    # A public client cannot keep a secret, so it cannot prove who is asking.
    quick_user(services)
    spa, _ = make_client("single-page app", public=True)
    tokens = user_tokens(flow, spa, None)

    response = client.post("/introspect", data={"token": tokens["access_token"], "client_id": spa.client_id})

    assert response.status_code == 401
    assert "active" not in response.json


def test_the_registered_authentication_method_is_enforced(client, make_client, rp, tokens):
    rp_client, secret = rp
    token = tokens["access_token"]

    # Registered for client_secret_basic: the right secret in the body is still refused.
    as_post = client.post(
        "/introspect", data={"token": token, "client_id": rp_client.client_id, "client_secret": secret}
    )
    assert as_post.status_code == 401

    poster, poster_secret = make_client("poster", auth_method="client_secret_post")
    form = {"token": token, "client_id": poster.client_id, "client_secret": poster_secret}
    response = client.post("/introspect", data=form)
    assert response.status_code == 200
    assert response.json == INACTIVE  # authenticated, but the token is not its business


# --- active tokens ---------------------------------------------------------------------


def test_a_live_access_token_is_active_with_its_claims(client, rp, tokens, settings):
    claims = claims_of(tokens["access_token"])

    body = answer(client, rp, tokens["access_token"])

    assert body["active"] is True
    for name in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "sid"):
        assert body[name] == claims[name], name
    assert body["iss"] == settings.issuer
    assert body["token_type"].lower() == "bearer"


def test_a_live_refresh_token_is_active_for_its_client(client, rp, tokens):
    access = claims_of(tokens["access_token"])

    body = answer(client, rp, tokens["refresh_token"], token_type_hint="refresh_token")

    assert body["active"] is True
    assert body["client_id"] == rp[0].client_id
    assert body["sub"] == access["sub"]
    assert set(body["scope"].split()) >= {"openid", "offline_access"}
    assert body["exp"] > access["exp"]


def test_the_hint_is_only_a_hint(client, rp, tokens):
    assert answer(client, rp, tokens["refresh_token"], token_type_hint="access_token")["active"] is True
    assert answer(client, rp, tokens["access_token"], token_type_hint="refresh_token")["active"] is True


# --- inactive tokens: exactly {"active": false} ------------------------------------------


def test_a_revoked_access_token_is_inactive(client, rp, tokens):
    rp_client, secret = rp
    revoke(client, rp_client, secret, tokens["access_token"])

    assert answer(client, rp, tokens["access_token"]) == INACTIVE


def test_a_revoked_refresh_token_and_its_access_tokens_are_inactive(client, rp, tokens):
    rp_client, secret = rp
    revoke(client, rp_client, secret, tokens["refresh_token"])

    assert answer(client, rp, tokens["refresh_token"]) == INACTIVE
    assert answer(client, rp, tokens["access_token"]) == INACTIVE


def test_a_spent_refresh_token_is_inactive_and_its_successor_active(client, rp, tokens, clock, settings):
    rp_client, secret = rp
    newest = refresh(client, rp_client, secret, tokens["refresh_token"]).json

    assert answer(client, rp, tokens["refresh_token"]) == INACTIVE
    assert answer(client, rp, newest["refresh_token"])["active"] is True
    assert answer(client, rp, newest["access_token"])["active"] is True


def test_an_expired_access_token_is_inactive(client, rp, tokens, clock, settings):
    exp = claims_of(tokens["access_token"])["exp"]
    assert settings.endpoint_leeway == 5
    # The issuer's own leeway covers only clock skew between its instances (5 s by default).
    for past_exp in (-1, 0, 3, 4):
        clock.now = exp + past_exp
        assert answer(client, rp, tokens["access_token"])["active"] is True, past_exp

    # Past it, even inside the verifiers' wider leeway, the issuer answers inactive.
    for past_exp in (5, 10, 59, 61, 3600):
        clock.now = exp + past_exp
        assert answer(client, rp, tokens["access_token"]) == INACTIVE, past_exp


def test_the_endpoint_leeway_is_a_setting(client, rp, tokens, clock, services):
    exp = claims_of(tokens["access_token"])["exp"]
    clock.now = exp + 10
    services.settings = services.settings.with_overrides(endpoint_leeway=15)
    assert answer(client, rp, tokens["access_token"])["active"] is True
    services.settings = services.settings.with_overrides(endpoint_leeway=0)
    clock.now = exp
    assert answer(client, rp, tokens["access_token"]) == INACTIVE


def test_an_expired_refresh_token_is_inactive(client, rp, tokens, settings, clock):
    clock.advance(settings.refresh_token_ttl + 1)

    assert answer(client, rp, tokens["refresh_token"]) == INACTIVE


def test_a_token_signed_by_another_key_is_inactive(client, rp, tokens):
    genuine = jwt.get_unverified_header(tokens["access_token"])
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims_of(tokens["access_token"]), stranger, algorithm="RS256", headers=genuine)

    assert answer(client, rp, forged) == INACTIVE


def test_an_unsigned_token_is_inactive(client, rp, tokens):
    header = {"alg": "none", "typ": "at+jwt", "kid": jwt.get_unverified_header(tokens["access_token"])["kid"]}
    unsigned = jwt.encode(claims_of(tokens["access_token"]), None, algorithm="none", headers=header)

    assert answer(client, rp, unsigned) == INACTIVE
    assert answer(client, rp, unsigned.rstrip(".")) == INACTIVE


def test_a_tampered_token_is_inactive(client, rp, tokens):
    header, payload, signature = tokens["access_token"].split(".")
    claims = claims_of(tokens["access_token"])
    claims["scope"] += " admin"
    forged_payload = jwt.utils.base64url_encode(jwt.api_jws.json.dumps(claims).encode()).decode()

    assert answer(client, rp, f"{header}.{forged_payload}.{signature}") == INACTIVE


def test_garbage_is_inactive(client, rp):
    for garbage in ("", "garbage", "a.b.c", "....", "x" * 4000, "eyJ9.eyJ9.eyJ9", "ünïcødé", "%00", "\u2028"):
        assert answer(client, rp, garbage) == INACTIVE, garbage


def test_an_id_token_is_not_an_access_token(client, rp, tokens):
    assert "id_token" in tokens

    assert answer(client, rp, tokens["id_token"]) == INACTIVE


def test_tokens_of_an_ended_session_are_inactive(client, flow, rp, tokens, services):
    services.revocations.end_session(claims_of(tokens["access_token"])["sid"])

    assert answer(client, rp, tokens["access_token"]) == INACTIVE
    assert answer(client, rp, tokens["refresh_token"]) == INACTIVE


# --- whose tokens a client may see ----------------------------------------------------------


def test_another_client_learns_nothing_about_a_token(client, rp, tokens, make_client):
    stranger = make_client("stranger")

    for kind in ("access_token", "refresh_token"):
        assert answer(client, stranger, tokens[kind]) == INACTIVE
    # The token itself is untouched.
    assert answer(client, rp, tokens["access_token"])["active"] is True


def test_a_resource_server_named_as_audience_may_introspect(client, make_client):
    resource_server = make_client("resource server", grant_types=("client_credentials",), redirect_uris=())
    rs_client, rs_secret = resource_server
    service, service_secret = make_client(
        "calling service",
        grant_types=("client_credentials",),
        redirect_uris=(),
        scope="read",
        audiences=(rs_client.client_id,),
    )
    issued = client.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": rs_client.client_id},
        headers=basic_auth(service.client_id, service_secret),
    )
    assert issued.status_code == 200, issued.json
    access = issued.json["access_token"]
    assert claims_of(access)["aud"] == rs_client.client_id

    body = answer(client, resource_server, access)

    assert body["active"] is True
    assert body["client_id"] == service.client_id
    bystander = make_client("bystander", grant_types=("client_credentials",), redirect_uris=())
    assert answer(client, bystander, access) == INACTIVE


def test_introspection_takes_form_posts_only(client, rp, tokens):
    rp_client, secret = rp

    headers = basic_auth(rp_client.client_id, secret)

    response = client.post("/introspect", json={"token": tokens["access_token"]}, headers=headers)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"

"""The UserInfo endpoint (OIDC Core §5.3, RFC 6750): claims per scope, the
Bearer header only, and a 401 with ``WWW-Authenticate`` for every token that
is not a live access token for a user (SECURITY.md B.27, B.33, A.11).
"""

import base64
import json
from dataclasses import replace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import basic_auth
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401
from tests.oidc import keyring_template  # noqa: F401
from tests.oidc import unverified

pytestmark = pytest.mark.usefixtures("fast_hashing")


@pytest.fixture
def rp(make_client):
    return make_client(first_party=True)


@pytest.fixture
def issue(flow, alice, rp):
    """Sign in once; return a function giving a token response for a scope."""
    assert flow.login().status_code == 303

    def tokens(scope="openid profile email offline_access"):
        record, secret = rp
        code, verifier, _ = flow.code(record, scope=scope)
        response = flow.exchange(record, secret, code, verifier)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    return tokens


def userinfo(client, token, method="GET", scheme="Bearer"):
    return client.open("/userinfo", method=method, headers={"Authorization": f"{scheme} {token}"})


def assert_bearer_401(response):
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "sub" not in (response.get_json() or {})


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("openid", {"sub"}),
        ("openid profile", {"sub", "preferred_username", "name"}),
        ("openid email", {"sub", "email", "email_verified"}),
        ("openid profile email", {"sub", "preferred_username", "name", "email", "email_verified"}),
    ],
)
def test_claims_follow_the_scopes(client, issue, alice, scope, expected):
    response = userinfo(client, issue(scope)["access_token"])

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    claims = response.get_json()
    assert set(claims) == expected
    assert claims["sub"] == alice.sub
    if "email" in expected:
        assert claims["email"] == alice.email
    if "preferred_username" in expected:
        assert claims["preferred_username"] == alice.username


def test_sub_matches_the_id_token(client, issue):
    body = issue()
    assert userinfo(client, body["access_token"]).get_json()["sub"] == unverified(body["id_token"])["sub"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_get_and_post_with_the_bearer_header_work(client, issue, method):
    assert userinfo(client, issue()["access_token"], method=method).status_code == 200


def test_bearer_scheme_is_case_insensitive(client, issue):
    assert userinfo(client, issue()["access_token"], scheme="bearer").status_code == 200


def test_token_in_the_query_string_is_refused(client, issue):
    token = issue()["access_token"]
    response = client.get("/userinfo?access_token=" + token)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    # Even together with a valid header: the URL copy may already sit in a log.
    both = client.get("/userinfo?access_token=" + token, headers={"Authorization": "Bearer " + token})
    assert both.status_code == 400


def test_token_in_the_form_body_is_refused(client, issue):
    response = client.post("/userinfo", data={"access_token": issue()["access_token"]})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["none", "empty", "scheme-only", "blank", "basic"],
)
def test_missing_token_is_401_with_a_bearer_challenge(client, headers):
    response = client.get("/userinfo", headers=headers)
    assert_bearer_401(response)


def test_revoked_access_token_is_401(client, issue, rp):
    token = issue()["access_token"]
    record, secret = rp
    assert (
        client.post("/revoke", data={"token": token}, headers=basic_auth(record.client_id, secret)).status_code == 200
    )

    response = userinfo(client, token)

    assert_bearer_401(response)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_expired_access_token_is_401(client, issue, clock, settings):
    token = issue()["access_token"]
    clock.advance(settings.access_token_ttl + settings.leeway + 1)
    assert_bearer_401(userinfo(client, token))


def test_only_the_endpoint_leeway_is_allowed_after_exp(client, issue, clock, settings):
    # Verifiers allow `leeway` (60 s); the issuer's own endpoint only clock skew (5 s).
    token = issue()["access_token"]
    exp = unverified(token)["exp"]
    assert settings.endpoint_leeway == 5 < settings.leeway
    clock.now = exp + 3
    assert userinfo(client, token).status_code == 200
    for past_exp in (5, 10, 59):
        clock.now = exp + past_exp
        response = userinfo(client, token)
        assert_bearer_401(response)
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_the_endpoint_leeway_is_a_setting(client, issue, clock, services):
    token = issue()["access_token"]
    exp = unverified(token)["exp"]
    clock.now = exp + 10
    services.settings = services.settings.with_overrides(endpoint_leeway=15)
    assert userinfo(client, token).status_code == 200
    services.settings = services.settings.with_overrides(endpoint_leeway=0)
    clock.now = exp
    assert_bearer_401(userinfo(client, token))


def test_id_token_as_access_token_is_401(client, issue):
    assert_bearer_401(userinfo(client, issue()["id_token"]))


def test_client_credentials_token_is_401_even_with_openid_scope(client, make_client):
    record, secret = make_client(
        "service", redirect_uris=(), grant_types=("client_credentials",), scope="openid profile"
    )
    response = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic_auth(record.client_id, secret)
    )
    assert response.status_code == 200, response.get_json()
    token = response.get_json()["access_token"]
    assert "openid" in unverified(token)["scope"].split()

    assert_bearer_401(userinfo(client, token))


def test_access_token_without_openid_is_403_insufficient_scope(client, issue):
    response = userinfo(client, issue("profile email")["access_token"])
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_token_of_a_disabled_user_is_401(client, issue, services, alice):
    token = issue()["access_token"]
    services.store.update_user(alice.sub, lambda user: replace(user, disabled=True))
    assert_bearer_401(userinfo(client, token))


def _b64(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_forged_tokens_are_401(client, issue):
    genuine = issue()["access_token"]
    header = jwt.get_unverified_header(genuine)
    claims = unverified(genuine)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forgeries = {
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': header['kid']})}.{_b64(claims)}.",
        "other-key": jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": header["kid"], "typ": "at+jwt"}),
        "tampered": genuine.rsplit(".", 2)[0].rsplit(".", 1)[0]
        + "."
        + _b64({**claims, "sub": "u_admin"})
        + "."
        + genuine.rsplit(".", 1)[1],
        "no-signature": genuine.rsplit(".", 1)[0] + ".",
        "garbage": "not.a.token",
        "huge": "a" * 100_000,
    }
    accepted = [name for name, token in forgeries.items() if userinfo(client, token).status_code != 401]
    assert accepted == []


def test_token_of_a_logged_out_session_is_401(client, issue):
    token = issue()["access_token"]
    page = client.get("/logout")
    import re

    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 200

    assert_bearer_401(userinfo(client, token))

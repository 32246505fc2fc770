"""The client credentials grant (RFC 6749 §4.4) and the access token it issues (RFC 9068).

Client authentication with ``client_secret_basic`` and ``client_secret_post``,
the registered method enforced, scopes limited to the client's, and the
audience taken from an RFC 8707 ``resource`` only when registered, else the
client's default audience (the first registered), else the issuer.
"""

import base64
from urllib.parse import quote

import jwt
import pytest

from tests.conftest import basic_auth
from tests.oidc import jwks_decode
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401

CC = {"grant_type": "client_credentials"}


@pytest.fixture
def service(make_client):
    return make_client("billing", grant_types=("client_credentials",), redirect_uris=(), scope="api:read api:write")


@pytest.fixture
def poster(make_client):
    return make_client(
        "poster",
        grant_types=("client_credentials",),
        redirect_uris=(),
        scope="api:read",
        auth_method="client_secret_post",
    )


def assert_token_response(response, scope):
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "application/json"
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["scope"] == scope
    assert "refresh_token" not in body and "id_token" not in body
    return body


def assert_oauth_error(response, status, error):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.json["error"] == error
    assert response.headers["Cache-Control"] == "no-store"
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_basic_auth_gets_an_rfc_9068_token(client, service, settings, keyring):  # noqa: F811
    record, secret = service
    body = assert_token_response(
        client.post("/token", data=CC, headers=basic_auth(record.client_id, secret)), "api:read api:write"
    )
    assert body["expires_in"] == settings.access_token_ttl
    header = jwt.get_unverified_header(body["access_token"])
    assert header == {"alg": "RS256", "kid": keyring.active("RS256").kid, "typ": "at+jwt"}
    claims = jwks_decode(client, body["access_token"], audience=settings.issuer, issuer=settings.issuer)
    assert set(claims) == {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"}
    assert claims["sub"] == claims["client_id"] == record.client_id
    assert claims["scope"] == "api:read api:write"
    assert claims["exp"] - claims["iat"] == settings.access_token_ttl


def test_post_auth_for_a_client_registered_for_it(client, poster):
    record, secret = poster
    response = client.post("/token", data={**CC, "client_id": record.client_id, "client_secret": secret})
    assert_token_response(response, "api:read")


def test_the_registered_auth_method_is_enforced(client, service, poster):
    record, secret = service
    response = client.post("/token", data={**CC, "client_id": record.client_id, "client_secret": secret})
    assert_oauth_error(response, 401, "invalid_client")
    record, secret = poster
    assert_oauth_error(
        client.post("/token", data=CC, headers=basic_auth(record.client_id, secret)), 401, "invalid_client"
    )


def test_client_sub_never_collides_with_a_user_sub(client, service, make_user):
    """RFC 9700 §4.15: a client must not pass for a resource owner."""
    user = make_user()
    record, secret = service
    body = client.post("/token", data=CC, headers=basic_auth(record.client_id, secret)).json
    sub = jwt.decode(body["access_token"], options={"verify_signature": False})["sub"]
    assert sub != user.sub and sub.split("_")[0] != user.sub.split("_")[0]
    # And the client's token is no key to anyone's userinfo.
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).status_code in (
        401,
        403,
    )


@pytest.mark.parametrize(
    "requested, granted",
    [
        ("api:read", "api:read"),
        ("api:write api:read", "api:write api:read"),
        ("api:read api:read", "api:read"),
        (None, "api:read api:write"),
    ],
)
def test_scope_is_what_was_asked_within_what_is_registered(client, service, requested, granted):
    record, secret = service
    form = {**CC, **({"scope": requested} if requested is not None else {})}
    body = assert_token_response(
        client.post("/token", data=form, headers=basic_auth(record.client_id, secret)), granted
    )
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["scope"] == granted


@pytest.mark.parametrize("scope", ["admin", "api:read admin", "openid", "offline_access", "API:READ"])
def test_scope_beyond_the_registration_is_invalid_scope(client, service, scope):
    record, secret = service
    response = client.post("/token", data={**CC, "scope": scope}, headers=basic_auth(record.client_id, secret))
    assert_oauth_error(response, 400, "invalid_scope")


def test_resource_becomes_the_audience_when_registered(client, make_client, settings):
    record, secret = make_client(
        "api caller",
        grant_types=("client_credentials",),
        redirect_uris=(),
        audiences=["https://api.example", "https://b.example"],
    )
    for resource in ("https://api.example", "https://b.example"):
        response = client.post(
            "/token", data={**CC, "resource": resource}, headers=basic_auth(record.client_id, secret)
        )
        token = assert_token_response(response, "")["access_token"]
        assert jwks_decode(client, token, audience=resource, issuer=settings.issuer)["aud"] == resource
    # Without a resource the audience is the client's default: the first one registered.
    token = client.post("/token", data=CC, headers=basic_auth(record.client_id, secret)).json["access_token"]
    assert jwks_decode(client, token, audience="https://api.example", issuer=settings.issuer)["aud"] == (
        "https://api.example"
    )


def test_a_token_without_resource_is_for_the_client_default_audience_not_the_issuer(client, make_client, settings):
    """Issue 7 §2: a token requested without ``resource`` must not replay at every service."""
    record, secret = make_client(
        "orders caller",
        grant_types=("client_credentials",),
        redirect_uris=(),
        scope="api:admin",
        audiences=["https://orders.example"],
    )
    body = assert_token_response(
        client.post("/token", data={**CC, "scope": "api:admin"}, headers=basic_auth(record.client_id, secret)),
        "api:admin",
    )
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "https://orders.example"
    assert claims["aud"] != settings.issuer


def test_a_client_without_an_audience_gets_the_issuer_as_audience(client, service, settings):
    """Such tokens are meant only for the issuer's own endpoints (userinfo, introspection)."""
    record, secret = service
    token = client.post("/token", data=CC, headers=basic_auth(record.client_id, secret)).json["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == settings.issuer
    introspected = client.post("/introspect", data={"token": token}, headers=basic_auth(record.client_id, secret))
    assert introspected.json["active"] is True and introspected.json["aud"] == settings.issuer


@pytest.mark.parametrize(
    "resource", ["https://evil.example", "https://api.example/", "https://API.example", "https://api.example.evil"]
)
def test_unregistered_resource_is_invalid_target(client, make_client, resource):
    record, secret = make_client(
        "api caller", grant_types=("client_credentials",), redirect_uris=(), audiences=["https://api.example"]
    )
    response = client.post("/token", data={**CC, "resource": resource}, headers=basic_auth(record.client_id, secret))
    assert_oauth_error(response, 400, "invalid_target")


def test_resource_without_any_registration_is_invalid_target(client, service):
    record, secret = service
    response = client.post(
        "/token", data={**CC, "resource": "https://api.example"}, headers=basic_auth(record.client_id, secret)
    )
    assert_oauth_error(response, 400, "invalid_target")


def test_a_client_not_registered_for_the_grant_is_refused(client, make_client):
    record, secret = make_client("web app")  # authorization_code + refresh_token only
    response = client.post("/token", data=CC, headers=basic_auth(record.client_id, secret))
    assert_oauth_error(response, 400, "unauthorized_client")


def test_a_public_client_cannot_use_the_grant(client, make_client):
    record, _ = make_client("spa", public=True)
    for form, headers in (
        ({**CC, "client_id": record.client_id}, {}),
        ({**CC, "client_id": record.client_id, "client_secret": "anything"}, {}),
        (CC, basic_auth(record.client_id, "")),
    ):
        assert_oauth_error(client.post("/token", data=form, headers=headers), 401, "invalid_client")


def test_percent_encoded_basic_credentials(client, make_client):
    """RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Base64."""
    record, secret = make_client("billing", grant_types=("client_credentials",), redirect_uris=())
    encoded = f"{quote(record.client_id, safe='')}:{quote(secret, safe='')}"
    fully = (
        "".join(f"%{b:02X}" for b in record.client_id.encode()) + ":" + "".join(f"%{b:02X}" for b in secret.encode())
    )
    for raw in (encoded, fully):
        headers = {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}
        assert client.post("/token", data=CC, headers=headers).status_code == 200


def test_each_token_is_new(client, service):
    record, secret = service
    tokens = [
        client.post("/token", data=CC, headers=basic_auth(record.client_id, secret)).json["access_token"]
        for _ in range(3)
    ]
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(jtis) == 3


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_signing_alg_setting(alg, tmp_path, make_client, clock):
    """AUTHSVC_SIGNING_ALG picks the access-token algorithm; the kid is that alg's active key."""
    from authsvc.app import create_app
    from authsvc.config import Settings
    from authsvc.services import build
    from authsvc.services import open_keyring

    settings = Settings().with_overrides(
        database_url=f"sqlite:///{tmp_path / 'other.db'}", keys_dir=str(tmp_path / "other-keys"), signing_alg=alg
    )
    ring = open_keyring(settings, clock=clock, create=True)
    services = build(settings, clock=clock, keyring=ring)
    try:
        services.store.upgrade()
        from authsvc import accounts

        record, secret = accounts.new_client("svc", now=clock(), grant_types=("client_credentials",))
        services.store.create_client(record)
        http = create_app(services=services).test_client()
        body = http.post("/token", data=CC, headers=basic_auth(record.client_id, secret)).json
        header = jwt.get_unverified_header(body["access_token"])
        assert header["alg"] == alg and header["kid"] == ring.active(alg).kid
        jwks_decode(http, body["access_token"], audience=settings.issuer, issuer=settings.issuer)
    finally:
        services.close()

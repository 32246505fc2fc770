"""CORS for browser apps: per-client allowed origins on /token, /revoke and /userinfo; "*" on the public documents.

An origin may read a response only when the client the request names
registered it (``client_id`` in the body or Basic credentials; the access
token's client at /userinfo). A preflight names no client, so it is answered
for any registered origin. ``Access-Control-Allow-Credentials`` is never sent.
"""

from dataclasses import replace

import pytest

from tests.conftest import basic_auth
from tests.oauth_calls import quick_user
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")

SPA = "https://spa.example"
OTHER = "https://other.example"
FORM = "application/x-www-form-urlencoded"


def with_origins(services, record, *origins):
    """Register ``origins`` for the client (the CLI's --allowed-origin, tested in tests/cli)."""
    return services.store.update_client(record.client_id, lambda c: replace(c, allowed_origins=origins))


@pytest.fixture
def spa(make_client, services):
    record, _ = make_client("single-page app", public=True, redirect_uris=(SPA + "/cb",))
    return with_origins(services, record, SPA, "http://127.0.0.1:5173")


@pytest.fixture
def other(make_client, services):
    """Another client, whose page runs at OTHER."""
    record, secret = make_client("other app")
    return with_origins(services, record, OTHER), secret


def allowed_origin(response):
    return response.headers.get("Access-Control-Allow-Origin")


def assert_no_cors(response):
    assert allowed_origin(response) is None
    assert "Access-Control-Allow-Credentials" not in response.headers


def assert_cors_for(response, origin):
    assert allowed_origin(response) == origin
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Origin" in response.headers.get("Vary", "")


def preflight(client, path, origin, method="POST", headers="content-type"):
    return client.options(
        path,
        headers={"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers},
    )


# -- /token --------------------------------------------------------------------


def test_the_spa_reads_its_token_response(flow, services, spa):
    quick_user(services)
    assert flow.login().status_code == 303
    code, verifier, _ = flow.code(spa, scope="openid")

    response = flow.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": spa.client_id,
            "redirect_uri": SPA + "/cb",
        },
        headers={"Origin": SPA},
    )

    assert response.status_code == 200 and response.json["access_token"]
    assert_cors_for(response, SPA)


def test_the_spa_reads_token_errors_too(client, spa):
    response = client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": "nope", "client_id": spa.client_id, "redirect_uri": SPA},
        headers={"Origin": "http://127.0.0.1:5173"},
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"
    assert_cors_for(response, "http://127.0.0.1:5173")


def test_an_origin_of_another_client_cannot_read_this_clients_response(client, spa, other):
    response = client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": "nope", "client_id": spa.client_id},
        headers={"Origin": OTHER},
    )
    assert_no_cors(response)
    assert "Origin" in response.headers["Vary"]


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "https://spa.example:443", SPA + "/", "*"])
def test_unregistered_origins_get_nothing(client, spa, origin):
    response = client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": "x", "client_id": spa.client_id},
        headers={"Origin": origin},
    )
    assert_no_cors(response)
    assert_no_cors(preflight(client, "/token", origin))


def test_a_client_authenticating_with_basic_is_named_by_its_credentials(client, other):
    record, secret = other
    response = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers={**basic_auth(record.client_id, secret), "Origin": OTHER},
    )
    assert response.status_code == 400
    assert_cors_for(response, OTHER)


def test_no_cors_headers_without_an_origin(client, spa):
    response = client.post("/token", data={"grant_type": "authorization_code", "client_id": spa.client_id})
    assert_no_cors(response)
    assert "Origin" in response.headers["Vary"]


# -- preflight -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/token", "/revoke"])
def test_preflight_for_a_registered_origin(client, spa, path):
    response = preflight(client, path, SPA)
    assert response.status_code in (200, 204)
    assert_cors_for(response, SPA)
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    assert int(response.headers["Access-Control-Max-Age"]) > 0


def test_preflight_answers_any_registered_origin_but_the_response_decides(client, spa, other):
    # The preflight cannot say which client will be named, so OTHER passes it...
    assert_cors_for(preflight(client, "/token", OTHER), OTHER)
    # ...and the actual response for the spa's client_id is still closed to OTHER.
    response = client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": "x", "client_id": spa.client_id},
        headers={"Origin": OTHER},
    )
    assert_no_cors(response)


def test_preflight_for_a_method_the_endpoint_does_not_take(client, spa):
    assert_no_cors(preflight(client, "/token", SPA, method="DELETE"))


# -- /revoke and /userinfo ---------------------------------------------------------


def test_the_spa_revokes_its_token_from_the_browser(client, spa, services, alice):
    token, _ = services.tokens.mint_access_token(
        client_id=spa.client_id, sub=alice.sub, scope="openid", audience=services.settings.issuer
    )
    response = client.post("/revoke", data={"token": token, "client_id": spa.client_id}, headers={"Origin": SPA})
    assert response.status_code == 200
    assert_cors_for(response, SPA)
    assert_no_cors(client.post("/revoke", data={"token": token, "client_id": spa.client_id}, headers={"Origin": OTHER}))


def test_userinfo_answers_the_origins_of_the_tokens_client(client, spa, other, services, alice):
    mint = services.tokens.mint_access_token
    spa_token, _ = mint(
        client_id=spa.client_id, sub=alice.sub, scope="openid profile", audience=services.settings.issuer
    )
    other_token, _ = mint(
        client_id=other[0].client_id, sub=alice.sub, scope="openid", audience=services.settings.issuer
    )

    response = client.get("/userinfo", headers={"Authorization": f"Bearer {spa_token}", "Origin": SPA})
    assert response.status_code == 200 and response.json["sub"] == alice.sub
    assert_cors_for(response, SPA)
    assert "WWW-Authenticate" in response.headers["Access-Control-Expose-Headers"]

    # The other client's token from the spa's page: the page may not read it.
    assert_no_cors(client.get("/userinfo", headers={"Authorization": f"Bearer {other_token}", "Origin": SPA}))
    # No valid token names no client.
    assert_no_cors(client.get("/userinfo", headers={"Authorization": "Bearer nope", "Origin": SPA}))

    answered = preflight(client, "/userinfo", SPA, method="GET", headers="authorization")
    assert_cors_for(answered, SPA)
    assert "GET" in answered.headers["Access-Control-Allow-Methods"]


# -- public documents ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/jwks.json", "/.well-known/openid-configuration"])
def test_public_documents_are_readable_from_any_page(client, path):
    response = client.get(path, headers={"Origin": "https://anyone.example"})
    assert response.status_code == 200
    assert allowed_origin(response) == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]
    answered = preflight(client, path, "https://anyone.example", method="GET", headers="if-none-match")
    assert allowed_origin(answered) == "*"
    assert "if-none-match" in answered.headers["Access-Control-Allow-Headers"].lower()


def test_other_endpoints_send_no_cors_headers(client, spa):
    for path in ("/introspect", "/revocations", "/login", "/authorize"):
        assert_no_cors(client.get(path, headers={"Origin": SPA}))
        assert_no_cors(preflight(client, path, SPA))

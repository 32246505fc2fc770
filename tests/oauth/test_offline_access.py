"""Refresh tokens only with offline access (OpenID Connect Core §11).

A client that is not first-party gets a refresh token only when the user granted
``offline_access`` on the consent page (remembered consent counts, a narrower one
does not). A first-party client (``--first-party``, no consent page) with the
refresh_token grant gets one without asking for ``offline_access``. A client
without the refresh_token grant never gets one.
"""

import secrets
from urllib.parse import urlencode

import pytest

from authsvc.oauth.issuance import secret_hash
from authsvc.store import RefreshToken
from tests.conftest import basic_auth
from tests.conftest import query_of
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401
from tests.oidc import keyring_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")


@pytest.fixture
def signed_in(flow, alice):
    assert flow.login().status_code == 303
    return alice


def tokens(flow, record, secret, scope: str) -> dict:
    code, verifier, query = flow.code(record, scope=scope)
    assert code, query
    response = flow.exchange(record, secret, code, verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def refresh(client, record, secret, refresh_token, **extra):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return client.post("/token", data=data, headers=basic_auth(record.client_id, secret))


def authorize_path(record, scope: str, **extra) -> str:
    params = {
        "response_type": "code",
        "client_id": record.client_id,
        "redirect_uri": record.redirect_uris[0],
        "scope": scope,
        "state": "st",
        **extra,
    }
    return "/authorize?" + urlencode(params)


def test_openid_alone_gets_no_refresh_token_for_a_client_that_is_not_first_party(flow, signed_in, make_client):
    record, secret = make_client("third-party app")
    body = tokens(flow, record, secret, "openid profile")
    assert body["access_token"] and body["id_token"]
    assert "refresh_token" not in body


def test_offline_access_granted_on_the_consent_page_gets_a_refresh_token(client, flow, signed_in, make_client):
    record, secret = make_client("third-party app")
    page = client.get(authorize_path(record, "openid offline_access"))
    # The consent page names offline access before the user allows it.
    assert page.status_code == 200 and b'name="decision"' in page.data
    assert b"offline_access" in page.data and b"while you are away" in page.data

    body = tokens(flow, record, secret, "openid offline_access")
    assert body["refresh_token"]
    rotated = refresh(client, record, secret, body["refresh_token"])
    assert rotated.status_code == 200, rotated.get_data(as_text=True)
    assert rotated.get_json()["refresh_token"] not in (None, body["refresh_token"])


def test_consent_without_offline_access_does_not_cover_it(client, flow, signed_in, make_client):
    record, secret = make_client("third-party app")
    assert "refresh_token" not in tokens(flow, record, secret, "openid")
    # Remembered consent for "openid" only: asking for offline access asks the user again...
    page = client.get(authorize_path(record, "openid offline_access"))
    assert page.status_code == 200 and b"offline_access" in page.data
    # ... and without a user to ask there is no code, so no refresh token.
    silent = client.get(authorize_path(record, "openid offline_access", prompt="none"))
    assert silent.status_code == 302
    assert query_of(silent.headers["Location"])["error"] == "consent_required"


def test_a_denied_consent_gets_no_refresh_token(client, flow, signed_in, make_client):
    record, _ = make_client("third-party app")
    response = flow.authorize(
        {
            "response_type": "code",
            "client_id": record.client_id,
            "redirect_uri": record.redirect_uris[0],
            "scope": "openid offline_access",
            "state": "st",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
        decision="deny",
    )
    query = query_of(response.headers["Location"])
    assert query["error"] == "access_denied" and "code" not in query


def test_a_first_party_client_gets_a_refresh_token_without_offline_access(client, flow, signed_in, make_client):
    record, secret = make_client("our own app", first_party=True)
    body = tokens(flow, record, secret, "openid profile")
    assert body["refresh_token"]
    assert refresh(client, record, secret, body["refresh_token"]).status_code == 200


def test_a_client_without_the_refresh_grant_never_gets_one(flow, signed_in, make_client):
    for first_party in (False, True):
        record, secret = make_client("no refresh", grant_types=("authorization_code",), first_party=first_party)
        assert "refresh_token" not in tokens(flow, record, secret, "openid offline_access")


def test_a_narrower_refresh_keeps_offline_access(client, flow, signed_in, make_client):
    """Offline access belongs to the grant: an access token asked for with less scope does not drop it."""
    record, secret = make_client("third-party app")
    body = tokens(flow, record, secret, "openid profile offline_access")
    narrow = refresh(client, record, secret, body["refresh_token"], scope="profile")
    assert narrow.status_code == 200, narrow.get_data(as_text=True)
    assert narrow.get_json()["scope"] == "profile"
    assert refresh(client, record, secret, narrow.get_json()["refresh_token"]).status_code == 200


def test_a_refresh_token_without_offline_access_is_refused(client, services, alice, make_client):
    """One issued before this rule (scope without offline_access, client not first-party) no longer refreshes."""
    record, secret = make_client("third-party app")
    plain, now = secrets.token_urlsafe(32), services.clock()
    services.store.create_refresh_token(
        RefreshToken(
            token_hash=secret_hash(plain),
            family_id=secrets.token_urlsafe(16),
            client_id=record.client_id,
            sub=alice.sub,
            scope="openid profile",
            issued_at=now,
            expires_at=now + 3600,
            auth_time=now,
            sid=None,
        )
    )
    response = refresh(client, record, secret, plain)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert "access_token" not in response.get_json()

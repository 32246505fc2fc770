"""A real relying-party library against a real gunicorn authsvc over HTTP.

Authlib's ``OAuth2Session`` (requests) is used the way an application uses
it: discovery, code + PKCE S256, ID token validation against the JWKS
(joserfc + Authlib's ``CodeIDToken`` rules), userinfo, two refreshes, and
RP-Initiated Logout, after which the refresh token is dead. The browser
part (login and consent forms) is driven with ``requests``.
"""

from urllib.parse import urlencode

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.requests_client import OAuthError
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

from tests import oidc

REDIRECT = "https://app.example/callback"
AFTER_LOGOUT = "https://app.example/signed-out"
SCOPE = "openid profile email offline_access"


@pytest.fixture(scope="module")
def issuer(sqlite_issuer):
    """The session's gunicorn authsvc, with a user and two registered apps of this module."""
    user = sqlite_issuer.user("erin", email="erin@example.com")
    web = sqlite_issuer.client("--redirect-uri", REDIRECT, "--post-logout-redirect-uri", AFTER_LOGOUT)
    spa = sqlite_issuer.client("--redirect-uri", REDIRECT, "--public", "--first-party")
    url = sqlite_issuer.instances[0].url
    metadata = requests.get(url + "/.well-known/openid-configuration", timeout=10).json()
    return {"url": url, "metadata": metadata, "user": user, "password": user["password"], "web": web, "spa": spa}


def validate_id_token(issuer, id_token, *, client_id, nonce, access_token):
    """What an RP does with an ID token: signature by the JWKS, then OIDC Core §3.1.3.7."""
    metadata = issuer["metadata"]
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=10).json())
    token = jwt.decode(id_token, keys, algorithms=metadata["id_token_signing_alg_values_supported"])
    claims = CodeIDToken(
        token.claims,
        token.header,
        options={
            "iss": {"essential": True, "value": metadata["issuer"]},
            "aud": {"essential": True, "value": client_id},
        },
        params={"nonce": nonce, "access_token": access_token},
    )
    claims.validate(leeway=60)
    return claims


def sign_in(issuer, rp: OAuth2Session, browser: requests.Session, **extra):
    """The browser goes to the authorization URL the RP built and comes back with the callback URL."""
    metadata = issuer["metadata"]
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = rp.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra
    )
    final = oidc.http_walk(
        browser, issuer["url"], url, username=issuer["user"]["username"], password=issuer["password"]
    )
    assert final.status_code in (302, 303), final.text[:500]
    callback = final.headers["Location"]
    assert callback.startswith(REDIRECT + "?")
    returned = oidc.location_query(final)
    assert returned["state"] == state
    # RFC 9207: the RP checks the response came from the issuer it asked.
    assert returned["iss"] == metadata["issuer"]
    return callback, verifier, nonce, state


def test_web_app_signs_in_refreshes_twice_and_signs_out(issuer):
    metadata = issuer["metadata"]
    web = issuer["web"]
    browser = requests.Session()
    rp = OAuth2Session(
        web["client_id"],
        web["client_secret"],
        scope=SCOPE,
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )

    callback, verifier, nonce, state = sign_in(issuer, rp, browser)
    token = rp.fetch_token(
        metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state
    )

    assert token["token_type"] == "Bearer"
    id_claims = validate_id_token(
        issuer, token["id_token"], client_id=web["client_id"], nonce=nonce, access_token=token["access_token"]
    )
    assert id_claims["sub"] == issuer["user"]["sub"]
    assert id_claims["nonce"] == nonce

    info = rp.get(metadata["userinfo_endpoint"], timeout=10)
    assert info.status_code == 200
    assert info.json() == {
        "sub": issuer["user"]["sub"],
        "preferred_username": issuer["user"]["username"],
        "name": issuer["user"]["username"],
        "email": "erin@example.com",
        "email_verified": False,
    }

    refresh_tokens = [token["refresh_token"]]
    for _ in range(2):
        refreshed = rp.refresh_token(metadata["token_endpoint"])
        assert refreshed["refresh_token"] not in refresh_tokens
        refresh_tokens.append(refreshed["refresh_token"])
        claims = validate_id_token(
            issuer,
            refreshed["id_token"],
            client_id=web["client_id"],
            nonce=None,
            access_token=refreshed["access_token"],
        )
        assert claims["sub"] == id_claims["sub"] and claims["sid"] == id_claims["sid"]
        assert rp.get(metadata["userinfo_endpoint"], timeout=10).status_code == 200

    logout_url = (
        metadata["end_session_endpoint"]
        + "?"
        + urlencode({"id_token_hint": rp.token["id_token"], "post_logout_redirect_uri": AFTER_LOGOUT, "state": "bye"})
    )
    bye = browser.get(logout_url, allow_redirects=False, timeout=10)
    assert bye.status_code in (302, 303)
    assert bye.headers["Location"] == AFTER_LOGOUT + "?state=bye"

    with pytest.raises(OAuthError) as refused:
        rp.refresh_token(metadata["token_endpoint"])
    assert refused.value.error == "invalid_grant"
    assert rp.get(metadata["userinfo_endpoint"], timeout=10).status_code == 401
    # The browser's session is over too: the next silent sign-in needs a login.
    url, _ = rp.create_authorization_url(
        metadata["authorization_endpoint"], code_verifier=generate_token(64), prompt="none"
    )
    silent = browser.get(url, allow_redirects=False, timeout=10)
    assert oidc.location_query(silent)["error"] == "login_required"


def test_single_page_app_without_a_secret_uses_pkce(issuer):
    metadata = issuer["metadata"]
    spa = issuer["spa"]
    browser = requests.Session()
    rp = OAuth2Session(
        spa["client_id"],
        scope="openid profile",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="none",
    )

    callback, verifier, nonce, state = sign_in(issuer, rp, browser)
    token = rp.fetch_token(
        metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier, state=state
    )

    claims = validate_id_token(
        issuer, token["id_token"], client_id=spa["client_id"], nonce=nonce, access_token=token["access_token"]
    )
    assert claims["sub"] == issuer["user"]["sub"]
    assert rp.get(metadata["userinfo_endpoint"], timeout=10).json()["preferred_username"] == issuer["user"]["username"]
    assert rp.refresh_token(metadata["token_endpoint"])["access_token"] != token["access_token"]


def test_the_library_refuses_a_callback_with_a_foreign_state(issuer):
    """The RP side of CSRF protection works with what authsvc returns (state echoed exactly)."""
    web = issuer["web"]
    rp = OAuth2Session(
        web["client_id"], web["client_secret"], scope="openid", redirect_uri=REDIRECT, code_challenge_method="S256"
    )
    callback, verifier, _, _ = sign_in(issuer, rp, requests.Session())
    with pytest.raises(Exception) as mismatch:
        rp.fetch_token(
            issuer["metadata"]["token_endpoint"],
            authorization_response=callback,
            code_verifier=verifier,
            state="someone-elses-state",
        )
    assert "state" in type(mismatch.value).__name__.lower() or "state" in str(mismatch.value).lower()

"""Small helpers for tests that get, refresh, revoke and introspect tokens
through the in-process Flask client (used by the revocation, introspection
and revocation-list tests).
"""

import functools
import secrets

import jwt

from authsvc import accounts
from authsvc.store import User
from tests.conftest import basic_auth

PASSWORD = "correct horse battery"


@functools.cache
def _password_hash() -> str:
    # argon2 costs about 0.3 s a hash by design; one is enough for every test.
    return accounts.hash_password(PASSWORD)


def quick_user(services, username="alice") -> User:
    """Store a user whose password is ``PASSWORD``, hashed once per test run."""
    user = User(
        sub="u_" + secrets.token_urlsafe(16),
        username=username,
        password_hash=_password_hash(),
        email=f"{username}@example.com",
        created_at=services.clock(),
    )
    services.store.create_user(user)
    return user


def user_tokens(flow, rp, secret, *, login=True, scope="openid profile offline_access") -> dict:
    """Log in (once per browser), authorize ``rp`` and return its token response."""
    if login:
        response = flow.login()
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:300]
    code, verifier, _ = flow.code(rp, scope=scope)
    response = flow.exchange(rp, secret, code, verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def client_auth(rp, secret) -> tuple[dict, dict]:
    """(headers, form fields) authenticating ``rp``: Basic for confidential, client_id for public."""
    if secret:
        return basic_auth(rp.client_id, secret), {}
    return {}, {"client_id": rp.client_id}


def refresh(client, rp, secret, refresh_token):
    headers, form = client_auth(rp, secret)
    return client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token, **form}, headers=headers
    )


def revoke(client, rp, secret, token, **extra):
    headers, form = client_auth(rp, secret)
    return client.post("/revoke", data={"token": token, **form, **extra}, headers=headers)


def introspect(client, rp, secret, token, **extra):
    headers, form = client_auth(rp, secret)
    return client.post("/introspect", data={"token": token, **form, **extra}, headers=headers)


def is_active(client, rp, secret, token) -> bool:
    response = introspect(client, rp, secret, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json["active"]


def userinfo_status(client, access_token) -> int:
    return client.get("/userinfo", headers={"Authorization": f"Bearer {access_token}"}).status_code


def claims_of(token: str) -> dict:
    """The payload of a JWT we were just issued (its signature is the server's business)."""
    return jwt.decode(token, options={"verify_signature": False})

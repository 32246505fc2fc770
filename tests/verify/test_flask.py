"""require_token (Flask) and VerifierMiddleware (WSGI): RFC 6750 answers."""

from __future__ import annotations

import json

import flask
import pytest
from werkzeug.test import Client

from authsvc.verify import VerifierMiddleware
from authsvc.verify import require_token


@pytest.fixture
def app(verifier):
    return make_app(verifier)


def make_app(verifier) -> flask.Flask:
    app = flask.Flask(__name__)

    @app.get("/hello")
    @require_token(verifier)
    def hello():
        return {"sub": flask.g.token["sub"]}

    @app.get("/admin")
    @require_token(verifier, scopes=["admin"])
    def admin():
        return {"ok": True}

    return app


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_valid_token_reaches_the_view(issuer, client):
    token = issuer.mint(sub="alice")
    response = client.get("/hello", headers=bearer(token))
    assert response.status_code == 200
    assert response.json == {"sub": "alice"}
    assert client.get("/hello", headers={"Authorization": f"bearer  {token}"}).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": ""}])
def test_no_token_gets_a_bare_challenge(client, headers):
    response = client.get("/hello", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert set(response.json) == {"error", "error_description"}
    assert response.json["error"] == "invalid_request"


def test_token_in_query_or_body_is_not_accepted(issuer, client):
    token = issuer.mint()
    response = client.get(f"/hello?access_token={token}")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    response = client.get("/hello", data={"access_token": token})
    assert response.status_code == 401


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "Bearer"])
def test_bad_token_gets_invalid_token(client, token):
    response = client.get("/hello", headers=bearer(token))
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="')
    assert response.json["error"] == "invalid_token"


def test_empty_bearer_credentials(client):
    response = client.get("/hello", headers={"Authorization": "Bearer "})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_expired_token_description_does_not_echo_the_token(issuer, client):
    token = issuer.mint(iat=1000, exp=2000)
    response = client.get("/hello", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json["error_description"]
    assert token not in response.get_data(as_text=True)
    assert token not in str(response.headers)


def test_missing_scope_gets_403(issuer, client):
    response = client.get("/admin", headers=bearer(issuer.mint(scope="read")))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", error_description="the access token lacks a required scope", scope="admin"'
    )
    assert response.json == {
        "error": "insufficient_scope",
        "error_description": "the access token lacks a required scope",
    }
    assert client.get("/admin", headers=bearer(issuer.mint(scope="read admin"))).status_code == 200


def test_unavailable_verifier_is_a_503(issuer, make_verifier):
    issuer.failing.update({"discovery", "jwks", "revocations"})
    client = make_app(make_verifier()).test_client()
    response = client.get("/hello", headers=bearer(issuer.mint()))
    assert response.status_code == 503
    assert "Retry-After" in response.headers


def test_flask_view_keeps_its_name(verifier):
    @require_token(verifier)
    def my_view():
        return "x"

    assert my_view.__name__ == "my_view"


# --- WSGI middleware ---------------------------------------------------------------------


def plain_app(environ, start_response):
    body = json.dumps({"sub": environ["authsvc.token"]["sub"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


@pytest.fixture
def wsgi(verifier):
    return Client(VerifierMiddleware(plain_app, verifier, scopes="read"))


def test_middleware_passes_claims_in_environ(issuer, wsgi):
    response = wsgi.get("/", headers=bearer(issuer.mint(sub="bob")))
    assert response.status_code == 200
    assert response.json == {"sub": "bob"}


def test_middleware_refuses_like_the_decorator(issuer, wsgi):
    response = wsgi.get("/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    response = wsgi.get(f"/?access_token={issuer.mint()}")
    assert response.status_code == 401
    response = wsgi.get("/", headers=bearer("x.y.z"))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json["error"] == "invalid_token"
    response = wsgi.get("/", headers=bearer(issuer.mint(scope="write")))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert 'scope="read"' in response.headers["WWW-Authenticate"]
    assert response.headers["Content-Length"] == str(len(response.data))

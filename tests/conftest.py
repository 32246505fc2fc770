"""Shared fixtures, in the style of flaskr's conftest: settings, a clock,
the key ring, a store, the services, the app and its test client, a CLI
runner, and ``flow``, which drives the login → authorize → token dance.
"""

import base64
import hashlib
import secrets
import time
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from authsvc import accounts
from authsvc.app import create_app
from authsvc.config import Settings
from authsvc.services import build
from authsvc.services import open_keyring
from authsvc.store import open_store


class Clock:
    """A clock that starts at ``now`` (default: the real time) and only moves when told."""

    def __init__(self, now: float | None = None):
        self.now = float(int(time.time()) if now is None else now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def settings(tmp_path):
    return Settings().with_overrides(
        database_url=f"sqlite:///{tmp_path / 'authsvc.db'}",
        keys_dir=str(tmp_path / "keys"),
    )


@pytest.fixture
def keyring(settings, clock):
    return open_keyring(settings, clock=clock, create=True)


@pytest.fixture
def store(settings):
    store = open_store(settings.database_url)
    store.upgrade()
    yield store
    store.close()


@pytest.fixture
def services(settings, clock, keyring, store):
    services = build(settings, clock=clock, keyring=keyring)
    yield services
    services.close()


@pytest.fixture
def app(services):
    return create_app(services=services)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def cli(settings, monkeypatch, capsys):
    """Run ``python -m authsvc`` in-process against the test settings."""
    from authsvc.cli import main

    monkeypatch.setenv("AUTHSVC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("AUTHSVC_KEYS_DIR", settings.keys_dir)

    def run(*args, stdin: str | None = None):
        if stdin is not None:
            import io

            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        return exited.value.code, out, err

    return run


@pytest.fixture
def make_user(services):
    def make(username="alice", password="correct horse battery", email="alice@example.com", **fields):
        user = accounts.new_user(username, password, email, services.clock())
        services.store.create_user(user)
        return user

    return make


@pytest.fixture
def alice(make_user):
    return make_user()


@pytest.fixture
def make_client(services):
    """Register a client; returns (record, clear secret or None)."""

    def make(name="web app", **kwargs):
        kwargs.setdefault("redirect_uris", ("https://rp.example/cb",))
        kwargs.setdefault("grant_types", ("authorization_code", "refresh_token"))
        audiences = kwargs.pop("audiences", ())
        client, secret = accounts.new_client(name, now=services.clock(), **kwargs)
        if audiences:
            from dataclasses import replace

            client = replace(client, audiences=tuple(audiences))
        services.store.create_client(client)
        return client, secret

    return make


def basic_auth(client_id: str, secret: str) -> dict:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class Flow:
    """Drive the browser flow against the test client (flaskr's AuthActions)."""

    def __init__(self, client):
        self.client = client

    def csrf(self, path: str) -> str:
        import re

        page = self.client.get(path)
        match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
        assert match, f"no csrf_token on {path}"
        return match.group(1)

    def login(self, username="alice", password="correct horse battery", return_to=""):
        token = self.csrf("/login")
        return self.client.post(
            "/login",
            data={"username": username, "password": password, "csrf_token": token, "return_to": return_to},
        )

    def authorize(self, params: dict, decision: str | None = "allow"):
        """GET /authorize; answer the consent page when shown. Returns the final response."""
        from urllib.parse import urlencode

        path = "/authorize?" + urlencode(params)
        response = self.client.get(path)
        if response.status_code == 200 and b'name="decision"' in response.data and decision:
            token = self.csrf(path)
            response = self.client.post(path, data={"decision": decision, "csrf_token": token})
        return response

    def code(self, client, *, scope="openid profile email offline_access", nonce="n-0S6", state="st", extra=None):
        """Log in is the caller's job; returns (code, verifier, redirect query)."""
        verifier, challenge = pkce_pair()
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uris[0],
            "scope": scope,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(extra or {})
        response = self.authorize(params)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        query = query_of(response.headers["Location"])
        return query.get("code"), verifier, query

    def exchange(self, client, secret, code, verifier, **extra):
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uris[0],
            "code_verifier": verifier,
        }
        data.update(extra)
        headers = basic_auth(client.client_id, secret) if secret else {}
        if not secret:
            data["client_id"] = client.client_id
        return self.client.post("/token", data=data, headers=headers)


@pytest.fixture
def flow(client):
    return Flow(client)


@pytest.fixture(scope="session")
def pg_pair(tmp_path_factory):
    """Two real gunicorn instances sharing one PostgreSQL schema and key ring, for the session.

    Skipped (failed under CI=true) when PostgreSQL is unreachable. Tests on it
    make their own users and clients; see tests/oidc.py ``Deployment``.
    """
    from tests.dbs import postgres_url_or_skip
    from tests.oidc import start_deployment

    deployment = start_deployment(tmp_path_factory.mktemp("pg-pair"), count=2, database_url=postgres_url_or_skip())
    yield deployment
    deployment.stop()


@pytest.fixture(scope="session")
def sqlite_issuer(tmp_path_factory):
    """One real gunicorn instance on an embedded SQLite store, as ``make run`` serves, for the session."""
    from tests.oidc import start_deployment

    deployment = start_deployment(tmp_path_factory.mktemp("sqlite-issuer"), count=1)
    yield deployment
    deployment.stop()


@pytest.fixture
def rp(services, make_client):
    """A relying party and a signed-up user (``oauth_calls.quick_user``); returns (record, secret)."""
    from tests.oauth_calls import quick_user

    quick_user(services)
    return make_client("relying party")


@pytest.fixture
def tokens(flow, rp):
    """The token response of ``rp`` after the user logged in and authorized it."""
    from tests.oauth_calls import user_tokens

    client, secret = rp
    return user_tokens(flow, client, secret)

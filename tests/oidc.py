"""Helpers shared by the OpenID Connect tests (authorization code, refresh,
userinfo, logout, login): cheaper fixtures and relying-party checks.

Import the fixtures by name into a test module to use them::

    from tests.oidc import fast_hashing  # noqa: F401
    from tests.oidc import keyring  # noqa: F401  (overrides conftest's: a copied ring)
    from tests.oidc import keyring_template  # noqa: F401

``keyring`` copies one RSA ring generated once per session instead of
generating a 2048-bit key for every test, and ``fast_hashing`` swaps the
argon2 parameters for the smallest legal ones. Neither changes what the
tests observe over HTTP; they only make the set-up cheap. Hashing cost itself
is tested elsewhere.
"""

import base64
import concurrent.futures
import hashlib
import shutil

import jwt
import pytest
from argon2 import PasswordHasher

from authsvc import accounts
from authsvc.services import open_keyring


@pytest.fixture(scope="session")
def keyring_template(tmp_path_factory):
    from authsvc.config import Settings

    path = tmp_path_factory.mktemp("keys-template") / "keys"
    open_keyring(Settings().with_overrides(keys_dir=str(path)), create=True)
    return path


@pytest.fixture
def keyring(settings, clock, keyring_template):  # noqa: F811 - overrides conftest's on purpose
    shutil.copytree(keyring_template, settings.keys_dir)
    return open_keyring(settings, clock=clock, create=True)


@pytest.fixture
def fast_hashing(monkeypatch):
    cheap = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    # Below the settings' floor on purpose: the factory, not the settings, is replaced.
    monkeypatch.setattr(accounts, "_hasher_for", lambda *parameters: cheap)


def half_hash(value: str, alg: str) -> str:
    """at_hash as a relying party computes it (SHA-512 for EdDSA, per the OIDC errata)."""
    digest = (hashlib.sha512 if alg == "EdDSA" else hashlib.sha256)(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def jwks_decode(http, token: str, *, audience: str, issuer: str, **options) -> dict:
    """Verify ``token`` against the published JWKS as a relying party would.

    ``http`` is anything with ``.get(path)`` returning a response whose
    ``get_json()`` or ``json()`` gives the JWK Set.
    """
    header = jwt.get_unverified_header(token)
    response = http.get("/jwks.json")
    jwks = response.get_json() if hasattr(response, "get_json") else response.json()
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert header["alg"] == jwk["alg"]
    return jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=[jwk["alg"]],
        audience=audience,
        issuer=issuer,
        options=options or None,
    )


def unverified(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


# -- a browser over real HTTP (requests), for tests against gunicorn ---------

CSRF_RE = r'name="csrf_token" value="([^"]+)"'


def csrf_of(html: str) -> str:
    import re

    match = re.search(CSRF_RE, html)
    assert match, "no csrf_token in the page"
    return match.group(1)


def http_login(session, base: str, username: str, password: str, return_to: str = ""):
    """Sign in through the login form of ``base``; returns the POST's response (not followed)."""
    page = session.get(base + "/login", timeout=10)
    return session.post(
        base + "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text), "return_to": return_to},
        allow_redirects=False,
        timeout=30,
    )


def http_authorize(session, base: str, params: dict, *, username=None, password=None, decision="allow"):
    """Walk /authorize → (login) → (consent) the way a browser does; returns the final
    response: the redirect to the client's redirect URI, or whatever page stopped the walk."""
    from urllib.parse import urlencode

    return http_walk(
        session, base, base + "/authorize?" + urlencode(params), username=username, password=password, decision=decision
    )


def http_walk(session, base: str, url: str, *, username=None, password=None, decision="allow"):
    """Follow ``url`` (an authorization request) through the login and consent forms of ``base``."""
    from urllib.parse import urljoin
    from urllib.parse import urlsplit

    response = session.get(url, allow_redirects=False, timeout=30)
    for _ in range(5):
        if response.status_code in (302, 303):
            location = urljoin(url, response.headers["Location"])
            if not location.startswith(base + "/"):
                return response
            if urlsplit(location).path == "/login" and username is not None:
                return_to = dict(_pairs(location)).get("return_to", "")
                response = http_login(session, base, username, password, return_to)
                assert response.status_code == 303, response.text[:300]
                url = urljoin(base, response.headers["Location"])
                response = session.get(url, allow_redirects=False, timeout=30)
                continue
            return response
        if response.status_code == 200 and 'name="decision"' in response.text and decision:
            response = session.post(
                url,
                data={"decision": decision, "csrf_token": csrf_of(response.text)},
                allow_redirects=False,
                timeout=30,
            )
            continue
        return response
    raise AssertionError("too many steps at /authorize")


def http_code(base: str, client_id: str, redirect_uri: str, scope: str, user: dict) -> tuple[str, str]:
    """Sign ``user`` in over HTTP and authorize with PKCE; return (code, code_verifier)."""
    import requests

    from tests.conftest import pkce_pair

    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    with requests.Session() as browser:
        final = http_authorize(browser, base, params, username=user["username"], password=user["password"])
    return location_query(final)["code"], verifier


def _pairs(url: str):
    from urllib.parse import parse_qsl
    from urllib.parse import urlsplit

    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def location_query(response) -> dict:
    return dict(_pairs(response.headers["Location"]))


# -- real instances shared by a whole test session ------------------------------------


class Deployment:
    """gunicorn instances sharing one database and key ring, started once per session.

    Tests on it must not interfere: each makes its own users and clients
    (``user()`` / ``client()`` give unique names).
    """

    def __init__(self, env: dict, database_url: str, instances: list):
        self.env = env
        self.database_url = database_url
        self.instances = instances
        self.issuer = env["AUTHSVC_ISSUER"]

    def user(self, prefix: str = "user", password: str | None = None, email: str | None = None) -> dict:
        import secrets

        from tests.servers import cli_json

        password = password or secrets.token_urlsafe(12)
        args = ["users", "create", "--username", f"{prefix}-{secrets.token_hex(4)}", "--password-stdin"]
        if email:
            args += ["--email", email]
        created = cli_json(self.env, *args, stdin=password + "\n")
        return {**created, "password": password}

    def client(self, *args: str, name: str | None = None) -> dict:
        import secrets

        from tests.servers import cli_json

        return cli_json(self.env, "clients", "create", "--name", name or f"rp-{secrets.token_hex(3)}", *args)

    def stop(self) -> None:
        for instance in self.instances:
            instance.stop()


def start_deployment(tmp_path, *, count: int, database_url: str | None = None, **env_extra) -> Deployment:
    """Prepare a database and key ring and start ``count`` instances on it."""
    from tests.servers import Instance
    from tests.servers import free_port
    from tests.servers import prepare
    from tests.servers import server_env

    ports = [free_port() for _ in range(count)]
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{ports[0]}", database_url=database_url, **env_extra)
    prepare(env)
    deployment = Deployment(env, env["AUTHSVC_DATABASE_URL"], [])
    # Started side by side: each start mostly waits on imports and the first /healthz.
    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(Instance, env, port) for port in ports]
    errors = []
    for future in futures:
        try:
            deployment.instances.append(future.result())
        except Exception as error:  # noqa: BLE001 - stop the ones that did start, then re-raise
            errors.append(error)
    if errors:
        deployment.stop()
        raise errors[0]
    return deployment

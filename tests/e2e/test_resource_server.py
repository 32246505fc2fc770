"""Logout and revocation reach a resource server that verifies tokens offline.

Real processes on loopback: a gunicorn authsvc (tests/servers.py) and the example
resource server, ``examples/resource_server.py``, started as its own process with a
short revocation poll interval and its default audience, its own URL; the apps are
registered with that audience. Users sign in through the issuer's real login form
(a first-party app, so no consent page), the resource server serves them, and after
a logout or a revocation at ``/revoke`` it refuses that token within one poll interval
while other tokens keep working. With Redis on both sides and a one-minute poll, a
revocation arrives within a second: only the Redis channel can explain that.
"""

import base64
import hashlib
import os
import secrets
import sys
import time
from urllib.parse import urlsplit

import pytest
import requests

from tests import oidc
from tests.servers import ROOT
from tests.servers import Instance
from tests.servers import LoopbackProcess
from tests.servers import cli_json
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import server_env
from tests.services_available import redis_url_or_skip

EXAMPLE = ROOT / "examples" / "resource_server.py"
REDIRECT = "https://app.example/callback"
AFTER_LOGOUT = "https://app.example/signed-out"
POLL = 1.0
# The poller waits the interval with ±10% jitter, then fetches the list: that, plus a
# margin for a loaded machine. The assertion is "within the poll interval", not a speed.
WITHIN_POLL = POLL * 1.1 + 3.0
REDIS_POLL = 60.0
# An audience named by AUDIENCE rather than the example's default (its own URL).
SERVICE_AUDIENCE = "https://orders.example"
WITHIN_REDIS = 1.0


class ResourceServer(LoopbackProcess):
    """``examples/resource_server.py`` in its own process; stopped by its PID only."""

    name = "resource server"
    # No token: a 401 from the decorator proves Flask and the route are up.
    ready_path = "/hello"
    ready_status = 401

    def __init__(self, issuer: str, log_dir, *, poll: float, redis_url: str | None = None, audience: str | None = None):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_") and k != "AUDIENCE"}
        env.update(AUTHSVC_ISSUER=issuer, PORT=str(port), AUTHSVC_POLL_INTERVAL=str(poll))
        if redis_url:
            env["AUTHSVC_REDIS_URL"] = redis_url
        if audience:
            env["AUDIENCE"] = audience
        # Without AUDIENCE the example's audience is its own URL.
        self.audience = audience or f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"resource-server-{port}.log"
        super().__init__([sys.executable, str(EXAMPLE)], env, port, self.log_path)

    def hello(self, token: str) -> requests.Response:
        return requests.get(self.url + "/hello", headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture(scope="module")
def resource_server(sqlite_issuer, tmp_path_factory):
    server = ResourceServer(sqlite_issuer.instances[0].url, tmp_path_factory.mktemp("resource-server"), poll=POLL)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def issuer(sqlite_issuer, resource_server):
    """The session's gunicorn authsvc, with this module's first-party app for the resource server."""
    app = sqlite_issuer.client(
        "--redirect-uri",
        REDIRECT,
        "--post-logout-redirect-uri",
        AFTER_LOGOUT,
        "--first-party",
        "--scope",
        "openid profile",
        "--audience",
        resource_server.audience,
    )
    url = sqlite_issuer.instances[0].url
    metadata = requests.get(url + "/.well-known/openid-configuration", timeout=10).json()
    return {"deployment": sqlite_issuer, "url": url, "metadata": metadata, "app": app}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def sign_in(issuer, user, browser: requests.Session | None = None) -> tuple[requests.Session, dict]:
    """Log ``user`` in through the issuer's login form (unless ``browser`` already is) and return its tokens."""
    browser = browser or requests.Session()
    app = issuer["app"]
    verifier, challenge = pkce()
    final = oidc.http_authorize(
        browser,
        issuer["url"],
        {
            "response_type": "code",
            "client_id": app["client_id"],
            "redirect_uri": REDIRECT,
            "scope": "openid profile",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        username=user["username"],
        password=user["password"],
        decision=None,  # first-party: a consent page here would be a failure
    )
    assert final.status_code in (302, 303), final.text[:500]
    assert final.headers["Location"].startswith(REDIRECT + "?"), final.headers["Location"]
    code = oidc.location_query(final)["code"]
    response = requests.post(
        issuer["metadata"]["token_endpoint"],
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier},
        auth=(app["client_id"], app["client_secret"]),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return browser, response.json()


def wait_until_refused(server: ResourceServer, token: str, within: float) -> requests.Response:
    """Call the resource server until it refuses ``token``; fail if it still serves it after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        response = server.hello(token)
        if response.status_code != 200 or time.monotonic() >= deadline:
            return response
        time.sleep(0.05)


def assert_refused_as_revoked(response: requests.Response) -> None:
    assert response.status_code == 401, f"still served: {response.status_code} {response.text[:200]}"
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json() == {"error": "invalid_token", "error_description": "the access token has been revoked"}


def test_a_user_who_logs_out_is_refused_within_a_poll_interval_while_another_is_served(issuer, resource_server):
    alice, bob = issuer["deployment"].user("alice"), issuer["deployment"].user("bob")
    alice_browser, alice_tokens = sign_in(issuer, alice)
    _, bob_tokens = sign_in(issuer, bob)

    served = resource_server.hello(alice_tokens["access_token"])
    assert served.status_code == 200, served.text
    assert served.json()["sub"] == alice["sub"]
    assert served.json()["client_id"] == issuer["app"]["client_id"]
    assert resource_server.hello(bob_tokens["access_token"]).json()["sub"] == bob["sub"]

    bye = alice_browser.get(
        issuer["metadata"]["end_session_endpoint"],
        params={"id_token_hint": alice_tokens["id_token"], "post_logout_redirect_uri": AFTER_LOGOUT},
        allow_redirects=False,
        timeout=10,
    )
    assert bye.status_code in (302, 303), bye.text[:300]
    assert bye.headers["Location"] == AFTER_LOGOUT

    assert_refused_as_revoked(wait_until_refused(resource_server, alice_tokens["access_token"], WITHIN_POLL))
    still = resource_server.hello(bob_tokens["access_token"])
    assert still.status_code == 200, still.text
    assert still.json()["sub"] == bob["sub"]


def test_a_token_revoked_at_the_endpoint_is_refused_within_a_poll_interval_and_only_that_token(issuer, resource_server):
    carol = issuer["deployment"].user("carol")
    browser, first = sign_in(issuer, carol)
    _, second = sign_in(issuer, carol, browser)  # same browser session, so the same sid
    for tokens in (first, second):
        assert resource_server.hello(tokens["access_token"]).status_code == 200

    app = issuer["app"]
    revoked = requests.post(
        issuer["metadata"]["revocation_endpoint"],
        data={"token": first["access_token"], "token_type_hint": "access_token"},
        auth=(app["client_id"], app["client_secret"]),
        timeout=10,
    )
    assert revoked.status_code == 200, revoked.text

    assert_refused_as_revoked(wait_until_refused(resource_server, first["access_token"], WITHIN_POLL))
    # Revoking one token names its jti, not the session or the user: the other still works.
    kept = resource_server.hello(second["access_token"])
    assert kept.status_code == 200, kept.text
    assert kept.json()["sub"] == carol["sub"]


# -- with Redis on both sides ---------------------------------------------------


@pytest.fixture
def redis_deployment(tmp_path):
    """An issuer and a resource server that both use Redis; the resource server polls once a minute."""
    redis_url = redis_url_or_skip()
    port = free_port()
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{port}", redis_url=redis_url)
    prepare(env)
    service = cli_json(
        env,
        "clients",
        "create",
        "--name",
        "svc",
        "--grant-type",
        "client_credentials",
        "--scope",
        "read",
        "--audience",
        SERVICE_AUDIENCE,
    )
    issuer = Instance(env, port)
    server = None
    try:
        server = ResourceServer(issuer.url, tmp_path, poll=REDIS_POLL, redis_url=redis_url, audience=SERVICE_AUDIENCE)
        yield {"issuer": issuer, "server": server, "service": service, "redis_url": redis_url}
    finally:
        if server is not None:
            server.stop()
        issuer.stop()


def wait_subscribed(redis_url: str, pid: int, timeout: float = 15.0) -> None:
    """Wait until the resource server's verifier is subscribed (Redis's CLIENT LIST says so)."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(c.get("name") == f"authsvc.verify:{pid}" and int(c.get("sub", 0)) > 0 for c in client.client_list()):
                return
            time.sleep(0.05)
    finally:
        client.close()
    pytest.fail(f"the resource server (pid {pid}) never subscribed to the revocation channel")


def test_with_redis_a_revocation_is_refused_within_a_second_though_the_poll_is_a_minute(redis_deployment):
    issuer, server = redis_deployment["issuer"], redis_deployment["server"]
    service = redis_deployment["service"]
    auth = (service["client_id"], service["client_secret"])
    metadata = requests.get(issuer.url + "/.well-known/openid-configuration", timeout=10).json()
    list_path = urlsplit(metadata["revocation_list_uri"]).path

    def access_token() -> str:
        grant = {"grant_type": "client_credentials"}
        response = requests.post(issuer.url + "/token", data=grant, auth=auth, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def polls() -> int:
        # A round trip first, so a poll answered before now has had its access-log line written.
        requests.get(issuer.url + "/healthz", timeout=10)
        return issuer.read_log().count(f'"GET {list_path}"')

    kept = access_token()
    assert server.hello(kept).status_code == 200
    wait_subscribed(redis_deployment["redis_url"], server.pid)

    # The channel is shared with every other issuer on this Redis, and a message out of
    # sequence wakes the poller: an attempt proves the point only when the resource server
    # did not fetch the list between the revocation and the refusal. Each attempt must
    # still be refused within the second.
    for _ in range(3):
        token = access_token()
        assert server.hello(token).status_code == 200
        before = polls()
        revoked = requests.post(issuer.url + "/revoke", data={"token": token}, auth=auth, timeout=10)
        assert revoked.status_code == 200, revoked.text
        assert_refused_as_revoked(wait_until_refused(server, token, WITHIN_REDIS))
        if polls() == before:
            break
    else:
        pytest.fail("every attempt overlapped a poll of the revocation list: Redis fan-out not shown")
    assert server.hello(kept).status_code == 200

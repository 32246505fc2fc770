"""Back-channel logout across real instances: the instance delivering a logout token is
SIGKILLed while the app is still answering, and another instance finishes the job.

The receiver holds the first POST open until the test has killed the instance
that sent it, so the kill lands mid-delivery every time. The killed instance
never learnt the answer, so its claim runs out and the second instance sends
the same logout token (same ``jti``) again: each app ends up with exactly one
logout token per logout, and every outbox row is marked delivered once.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
import pytest
import requests

from authsvc import backchannel
from authsvc.store import open_store
from tests.dbs import postgres_url_or_skip
from tests.oidc import csrf_of
from tests.oidc import http_authorize
from tests.servers import Instance
from tests.servers import cli_json
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import server_env


class HoldingReceiver(ThreadingHTTPServer):
    """Two apps' logout endpoints (``/a``, ``/b``); the first POST is held until ``release`` is set."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[tuple[str, str]] = []
        self.first = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()

    def uri(self, app: str) -> str:
        return f"http://127.0.0.1:{self.server_port}/{app}"

    def tokens_for(self, app: str) -> list[str]:
        with self.lock:
            return [token for path, token in self.received if path == "/" + app]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        server = self.server
        with server.lock:
            server.received.extend((self.path, token) for token in parse_qs(body).get("logout_token", []))
            hold = not server.first.is_set()
            server.first.set()
        if hold:
            server.release.wait(60)
        try:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass  # the sender is dead: nobody reads this answer

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = HoldingReceiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_exactly_one_logout_token_per_client_when_the_sending_instance_is_killed(tmp_path, receiver, backend):
    database_url = postgres_url_or_skip() if backend == "postgresql" else None
    first_port, second_port = free_port(), free_port()
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{first_port}", database_url=database_url)
    prepare(env)
    password = "back-channel password"
    cli_json(env, "users", "create", "--username", "bea", "--password-stdin", stdin=password + "\n")
    apps = {}
    for name in ("a", "b"):
        apps[name] = cli_json(
            env,
            "clients",
            "create",
            "--name",
            f"app {name}",
            "--public",
            "--redirect-uri",
            f"http://127.0.0.1:{free_port()}/cb",
            "--backchannel-logout-uri",
            receiver.uri(name),
        )["client_id"]
    store = open_store(env["AUTHSVC_DATABASE_URL"])
    first = Instance(env, first_port)
    second = None
    try:
        with requests.Session() as browser:
            for name, client_id in apps.items():
                redirect_uri = store.get_client(client_id).redirect_uris[0]
                params = {
                    "response_type": "code",
                    "client_id": client_id,
                    "redirect_uri": redirect_uri,
                    "scope": "openid",
                    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                    "code_challenge_method": "S256",
                }
                answer = http_authorize(browser, first.url, params, username="bea", password=password)
                assert answer.headers["Location"].startswith(redirect_uri + "?code="), name
            confirm = browser.get(first.url + "/logout", timeout=10)
            started = time.monotonic()
            logged_out = browser.post(first.url + "/logout", data={"csrf_token": csrf_of(confirm.text)}, timeout=10)
            # The logout answers while the app's endpoint is still holding the first delivery.
            assert logged_out.status_code == 200 and "signed out" in logged_out.text
            assert time.monotonic() - started < backchannel.POST_TIMEOUT

        assert receiver.first.wait(20), "the first instance never sent a logout token"
        first.kill()  # mid-delivery: the app has the POST, the sender never sees the answer
        receiver.release.set()
        second = Instance(env, second_port)

        def all_delivered():
            rows = store.list_logout_deliveries()
            return len(rows) == 2 and all(row.delivered_at is not None for row in rows) and rows

        rows = wait_for(all_delivered, backchannel.LEASE + 3 * backchannel.POLL_INTERVAL + 10, "both deliveries")

        jwks = requests.get(second.url + "/jwks.json", timeout=10).json()
        for name, client_id in apps.items():
            tokens = receiver.tokens_for(name)
            claims = [verify(token, jwks, client_id, env["AUTHSVC_ISSUER"]) for token in tokens]
            assert len({c["jti"] for c in claims}) == 1, f"app {name} got {len(claims)} different logout tokens"
            assert len({c["sid"] for c in claims}) == 1
        # One of the two was sent twice on the wire (the kill cut its first answer), the other once.
        assert sorted(len(receiver.tokens_for(name)) for name in apps) == [1, 2]
        assert sorted(row.attempts for row in rows) == [1, 2]
        wait_for(lambda: "logout.delivered" in second.read_log(), 10, "the delivery to be logged")
    finally:
        store.close()
        first.stop()
        if second is not None:
            second.stop()


def verify(token: str, jwks: dict, client_id: str, issuer: str) -> dict:
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt"
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=[key["alg"]], audience=client_id, issuer=issuer)
    assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
    assert "nonce" not in claims and claims["sub"]
    return claims

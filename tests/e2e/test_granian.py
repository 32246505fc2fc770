"""``serve --server granian`` for real: two granian workers on loopback, driven over HTTP.

The same app as under gunicorn, so these tests check what the server
changes: tokens on the client-credentials shortcut and errors on the full
path, the escaped access log with request ids, ``/metrics`` summed over the
workers on its own address, and a clean exit on SIGTERM.
"""

import os
import re
import signal
import socket

import jwt
import pytest
import requests

from tests.e2e.test_access_log import FORGED
from tests.e2e.test_metrics_bind import token_requests
from tests.servers import Instance
from tests.servers import cli_json
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import server_env


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e-granian")
    port, metrics_port = free_port(), free_port()
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{port}", AUTHSVC_METRICS_BIND=f"127.0.0.1:{metrics_port}")
    prepare(env)
    made = cli_json(
        env,
        "clients",
        "create",
        "--name",
        "svc",
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
        "--audience",
        "https://api.example",
    )
    server = Instance(env, port, workers=2, server="granian")
    server.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    server.credentials = (made["client_id"], made["client_secret"])
    yield server
    server.stop()


def access_lines(instance) -> list[str]:
    return [line for line in instance.read_log().splitlines() if "authsvc.access: " in line]


def wait_for_line(instance, marker: str) -> str:
    """The line is written once the response is sent: poll with later requests, never a fixed wait."""
    for _ in range(100):
        found = [line for line in access_lines(instance) if marker in line]
        if found:
            return found[-1]
        requests.get(instance.url + "/healthz", timeout=5)
    raise AssertionError(f"no access-log line with {marker!r}")


def test_a_service_gets_a_token_the_jwks_verifies(instance):
    response = requests.post(
        instance.url + "/token", data={"grant_type": "client_credentials"}, auth=instance.credentials, timeout=5
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
    token = response.json()["access_token"]
    jwks = jwt.PyJWKSet.from_dict(requests.get(instance.url + "/jwks.json", timeout=5).json())
    key = next(k for k in jwks.keys if k.key_id == jwt.get_unverified_header(token)["kid"])
    claims = jwt.decode(token, key.key, algorithms=[key.algorithm_name], audience="https://api.example")
    assert claims["client_id"] == instance.credentials[0] and claims["scope"] == "api:read"


def test_errors_come_from_the_full_path(instance):
    client_id, secret = instance.credentials
    refused = requests.post(
        instance.url + "/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret + "x"), timeout=5
    )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    wrong_scope = requests.post(
        instance.url + "/token",
        data={"grant_type": "client_credentials", "scope": "api:admin"},
        auth=instance.credentials,
        timeout=5,
    )
    assert wrong_scope.status_code == 400 and wrong_scope.json()["error"] == "invalid_scope"
    discovery = requests.get(instance.url + "/.well-known/openid-configuration", timeout=5).json()
    assert discovery["issuer"] == instance.url


def test_the_access_log_is_escaped_and_names_the_request(instance):
    with socket.create_connection(("127.0.0.1", instance.port), timeout=10) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % FORGED.encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 404")
    line = wait_for_line(instance, '"GET /x')
    assert '127.0.0.1 "GET /x\\x0d\\x0a127.0.0.1 \\x22POST /token\\x22 200 42 1ms\\x0a\\x1b[2J' in line
    assert re.search(r'\\x22\\x5c\\xc3\\xa9" 404 \d+ \d+ms [0-9a-f]{32}$', line), line
    assert not [entry for entry in access_lines(instance) if entry.endswith('"POST /token" 200 42 1ms')]
    response = requests.get(instance.url + "/healthz", timeout=5)
    assert (
        wait_for_line(instance, response.headers["X-Request-Id"])
        .split("authsvc.access: ")[1]
        .startswith('127.0.0.1 "GET /healthz" 200 ')
    )


def test_metrics_count_every_workers_requests(instance):
    before = requests.get(instance.metrics_url, timeout=5).text
    for _ in range(10):
        # A new connection each: the kernel spreads them over both workers' sockets.
        response = requests.post(
            instance.url + "/token", data={"grant_type": "client_credentials"}, auth=instance.credentials, timeout=5
        )
        assert response.status_code == 200
    after = requests.get(instance.metrics_url, timeout=5).text
    assert token_requests(after, "200") == token_requests(before, "200") + 10


def test_sigterm_stops_every_worker_cleanly(tmp_path):
    port = free_port()
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{port}")
    prepare(env)
    server = Instance(env, port, workers=2, server="granian")
    workers = [int(pid) for pid in re.findall(r"Spawning worker-\d with PID: (\d+)", server.read_log())]
    assert len(workers) == 2
    os.killpg(server.pid, signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert "Killing worker" not in server.read_log()
    server.stop()

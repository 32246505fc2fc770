"""The issuer end to end: real gunicorn processes on loopback, driven over HTTP.

Two instances share one SQLite database and one key ring, as two processes
behind a load balancer would. A client gets a token with client credentials
and verifies it offline with PyJWT against the JWKS fetched over HTTP; the
ring is rotated with the CLI while both run; a corrupted manifest and a
SIGKILLed instance do not stop the survivor from issuing tokens.
"""

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest
import requests

from tests.servers import ROOT
from tests.servers import Instance
from tests.servers import cli_json
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import run_cli
from tests.servers import server_env

CC = {"grant_type": "client_credentials"}
METRICS_TOKEN = "e2e-metrics-token-0123456789abcdef"


def wait_for(check, timeout=15.0, what="condition"):
    """Poll ``check`` until truthy; instances re-read the ring at most once a second."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Cluster:
    def __init__(self, tmp_path):
        port_a, port_b = free_port(), free_port()
        self.issuer = f"http://127.0.0.1:{port_a}"
        self.env = server_env(tmp_path, issuer=self.issuer, AUTHSVC_METRICS_TOKEN=METRICS_TOKEN)
        prepare(self.env)
        self.keys_dir = Path(self.env["AUTHSVC_KEYS_DIR"])
        made = cli_json(
            self.env, "clients", "create", "--name", "e2e", "--grant-type", "client_credentials", "--scope", "api:read"
        )
        self.client_id, self.secret = made["client_id"], made["client_secret"]
        # Started side by side: each start waits for its /healthz.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(Instance, self.env, port) for port in (port_a, port_b)]
        started = [f.result() for f in futures if f.exception() is None]
        if len(started) != 2:
            for instance in started:
                instance.stop()
            raise next(f.exception() for f in futures if f.exception() is not None)
        self.a, self.b = started
        self.instances = [self.a, self.b]
        self.http = requests.Session()
        self.issued = []

    def token(self, instance) -> str:
        response = self.http.post(instance.url + "/token", data=CC, auth=(self.client_id, self.secret), timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == "no-store"
        self.issued.append(response.json()["access_token"])
        return self.issued[-1]

    def jwks(self, instance) -> dict:
        response = self.http.get(instance.url + "/jwks.json", timeout=10)
        assert response.status_code == 200
        return response.json()

    def introspect(self, instance, token) -> dict:
        response = self.http.post(
            instance.url + "/introspect", data={"token": token}, auth=(self.client_id, self.secret), timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    def verify(self, token, jwks_client) -> dict:
        signing_key = jwks_client.get_signing_key_from_jwt(token)
        return jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=self.issuer, issuer=self.issuer)

    def stop(self):
        with concurrent.futures.ThreadPoolExecutor(len(self.instances)) as pool:
            list(pool.map(lambda instance: instance.stop(), self.instances))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("e2e-issuer"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def jwks_client(cluster):
    """One verifier for the whole module, as a downstream service would keep one.

    PyJWT waits 30 s between refetches on an unknown kid by default; the tests
    rotate faster than that, and what they check is the issuer's JWKS.
    """
    discovery = requests.get(cluster.issuer + "/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == cluster.issuer
    return jwt.PyJWKClient(discovery["jwks_uri"], cooldown_duration=0)


def test_a_token_verifies_offline_against_the_published_jwks(cluster, jwks_client):
    token = cluster.token(cluster.a)
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    claims = cluster.verify(token, jwks_client)
    assert claims["client_id"] == claims["sub"] == cluster.client_id
    assert claims["scope"] == "api:read"
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"} <= set(claims)


def test_two_instances_answer_alike(cluster, jwks_client):
    a, b = cluster.a, cluster.b
    assert (
        requests.get(a.url + "/jwks.json", timeout=10).content == requests.get(b.url + "/jwks.json", timeout=10).content
    )
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        assert requests.get(a.url + path, timeout=10).content == requests.get(b.url + path, timeout=10).content
    from_a, from_b = cluster.token(a), cluster.token(b)
    assert cluster.introspect(b, from_a)["active"] is True
    assert cluster.introspect(a, from_b)["active"] is True
    assert cluster.verify(from_b, jwks_client)["iss"] == cluster.issuer


def test_rotation_with_the_cli_while_serving(cluster, jwks_client):
    old_token = cluster.token(cluster.a)
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    added = cli_json(cluster.env, "keys", "add")
    assert added["status"] == "next"
    for instance in cluster.instances:
        wait_for(
            lambda i=instance: added["kid"] in {k["kid"] for k in cluster.jwks(i)["keys"]}, what="the next key in JWKS"
        )
        # Published, not yet signing.
        assert jwt.get_unverified_header(cluster.token(instance))["kid"] == old_kid

    # The next key was published only moments ago: refused without --force, which warns.
    assert "--force" in run_cli(cluster.env, "keys", "rotate", "--json").stderr
    rotated = run_cli(cluster.env, "keys", "rotate", "--force", "--json")
    assert rotated.returncode == 0, rotated.stderr
    assert json.loads(rotated.stdout)["active"]["kid"] == added["kid"]
    assert "max-age" in rotated.stderr

    for instance in cluster.instances:
        wait_for(
            lambda i=instance: jwt.get_unverified_header(cluster.token(i))["kid"] == added["kid"],
            what="the new kid in tokens",
        )
    new_token = cluster.token(cluster.b)
    # The verifier refetches on the unknown kid; the old token still verifies (its key is retired, published).
    assert cluster.verify(new_token, jwks_client)["client_id"] == cluster.client_id
    assert cluster.verify(old_token, jwks_client)["client_id"] == cluster.client_id
    statuses = {k["kid"]: k["status"] for k in cli_json(cluster.env, "keys", "list")}
    assert statuses[old_kid] == "retired" and statuses[added["kid"]] == "active"

    # A freshly retired key can still be needed by live tokens: prune keeps it published.
    assert cli_json(cluster.env, "keys", "prune") == []
    for instance in cluster.instances:
        assert old_kid in {k["kid"] for k in cluster.jwks(instance)["keys"]}
    assert cluster.introspect(cluster.a, old_token)["active"] is True


def test_a_corrupted_manifest_fails_readiness_but_not_issuance(cluster, jwks_client):
    manifest = cluster.keys_dir / "manifest.json"
    good = manifest.read_bytes()
    kid = jwt.get_unverified_header(cluster.token(cluster.a))["kid"]
    manifest.write_text('{"version": 1, "keys": [{"kid": "')
    try:
        for instance in cluster.instances:
            problems = wait_for(
                lambda i=instance: (r := requests.get(i.url + "/readyz", timeout=10)).status_code == 503 and r.json(),
                what="/readyz to report the broken manifest",
            )
            assert problems == {"status": "unavailable", "failed": ["key ring"]}
            assert requests.get(instance.url + "/healthz", timeout=10).status_code == 200
            token = cluster.token(instance)
            assert jwt.get_unverified_header(token)["kid"] == kid
            cluster.verify(token, jwks_client)
            assert cluster.jwks(instance)["keys"]
        broken = run_cli(cluster.env, "keys", "list", "--json")
        assert broken.returncode != 0 and broken.stdout == ""
        assert len(broken.stderr.splitlines()) == 1 and "manifest.json" in broken.stderr
    finally:
        manifest.write_bytes(good)
    for instance in cluster.instances:
        wait_for(
            lambda i=instance: requests.get(i.url + "/readyz", timeout=10).status_code == 200, what="/readyz to recover"
        )


def raw_request(instance, data: bytes) -> bytes:
    """Send bytes as they are (no client library would send these) and return the answer."""
    with socket.create_connection(("127.0.0.1", instance.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" not in data:
                break
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_malformed_http_at_the_token_endpoint(cluster):
    """SECURITY.md E.52–E.53 through gunicorn: smuggling and oversized headers are 4xx, never 5xx."""
    body = b"grant_type=client_credentials"
    smuggle = (
        b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % len(body)
    ) + b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = raw_request(cluster.a, smuggle)
    assert 400 <= status_of(answer) < 500, answer[:200]
    assert answer.count(b"HTTP/1.1 ") == 1, "a second, smuggled request was answered"

    huge_header = "Basic " + "A" * 10240
    response = requests.post(cluster.a.url + "/token", data=CC, headers={"Authorization": huge_header}, timeout=10)
    assert 400 <= response.status_code < 500
    long_line = requests.post(cluster.a.url + "/token?" + "x" * 5000, data=CC, timeout=10)
    assert 400 <= long_line.status_code < 500
    # The instance is unharmed.
    assert cluster.token(cluster.a)


def test_sigkill_of_one_instance_leaves_the_other_serving(cluster, jwks_client):
    survivor, victim = cluster.a, cluster.b
    jwks_before = cluster.jwks(survivor)
    token_from_victim = cluster.token(victim)
    stop = threading.Event()
    counts = {"survivor_ok": 0, "survivor_errors": [], "victim_ok": 0}

    def hammer_survivor():
        session = requests.Session()
        while not stop.is_set():
            try:
                response = session.post(
                    survivor.url + "/token", data=CC, auth=(cluster.client_id, cluster.secret), timeout=10
                )
                if response.status_code != 200:
                    counts["survivor_errors"].append(response.status_code)
                    continue
                token = response.json()["access_token"]
                check = session.post(
                    survivor.url + "/introspect",
                    data={"token": token},
                    auth=(cluster.client_id, cluster.secret),
                    timeout=10,
                )
                if check.status_code != 200 or check.json().get("active") is not True:
                    counts["survivor_errors"].append(("introspect", check.status_code))
                    continue
                counts["survivor_ok"] += 1
            except requests.RequestException as exc:
                counts["survivor_errors"].append(type(exc).__name__)

    def hammer_victim():
        session = requests.Session()
        while not stop.is_set():
            try:
                if (
                    session.post(
                        victim.url + "/token", data=CC, auth=(cluster.client_id, cluster.secret), timeout=5
                    ).status_code
                    == 200
                ):
                    counts["victim_ok"] += 1
            except requests.RequestException:
                pass  # in-flight requests of the killed instance may fail

    threads = [threading.Thread(target=hammer_survivor), threading.Thread(target=hammer_victim)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: counts["survivor_ok"] >= 10 and counts["victim_ok"] >= 10, what="traffic on both instances")
        victim.kill()
        killed_at = counts["survivor_ok"]
        wait_for(lambda: counts["survivor_ok"] >= killed_at + 30, what="traffic after the kill")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert counts["survivor_errors"] == []
    assert cluster.jwks(survivor) == jwks_before
    # What the dead instance issued is still known to the shared store and ring.
    assert cluster.introspect(survivor, token_from_victim)["active"] is True

    # A replacement on the same database and ring answers like the survivor.
    replacement = Instance(cluster.env, free_port())
    cluster.instances.append(replacement)
    assert cluster.jwks(replacement) == jwks_before
    assert cluster.introspect(replacement, cluster.token(survivor))["active"] is True
    cluster.verify(cluster.token(replacement), jwks_client)


def test_logs_carry_no_secrets_or_tokens(cluster):
    """SECURITY.md E.54: the access and error logs of every instance."""
    logs = "".join(instance.read_log() for instance in cluster.instances)
    assert "POST /token" in logs  # the access log is on: the check below is not vacuous
    assert cluster.secret not in logs
    for token in cluster.issued:
        assert token not in logs
        assert token.split(".")[2] not in logs


def test_metrics_count_requests_across_workers_and_carry_no_secrets(cluster):
    instance = cluster.instances[0]
    scrape = {"Authorization": "Bearer " + METRICS_TOKEN}
    before = _token_requests(requests.get(instance.url + "/metrics", headers=scrape, timeout=5).text)
    for _ in range(3):
        requests.post(instance.url + "/token", data={"grant_type": "client_credentials"}, timeout=5)
    body = requests.get(instance.url + "/metrics", headers=scrape, timeout=5).text
    # gunicorn's workers write to one multiprocess directory, so /metrics sums them all.
    assert _token_requests(body) == before + 3
    assert cluster.secret not in body
    assert not any(token in body for token in cluster.issued)


def test_metrics_on_the_main_bind_need_the_bearer_token(cluster):
    """AUTHSVC_METRICS_TOKEN without AUTHSVC_METRICS_BIND: /metrics answers only to that token."""
    url = cluster.a.url + "/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + METRICS_TOKEN}):
        refused = requests.get(url, headers=headers, timeout=5)
        assert refused.status_code == 401, headers
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "authsvc_http_requests_total" not in refused.text
    token = cluster.token(cluster.a)
    assert requests.get(url, headers={"Authorization": "Bearer " + token}, timeout=5).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer " + METRICS_TOKEN}, timeout=5).status_code == 200
    assert METRICS_TOKEN not in cluster.a.read_log()


def _token_requests(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("authsvc_http_requests_total{") and 'endpoint="/token"' in line
    )


def test_serve_refuses_to_start_without_a_key_ring(tmp_path):
    env = server_env(tmp_path, issuer="http://127.0.0.1:8000")
    env["AUTHSVC_KEYS_DIR"] = str(tmp_path / "no-such-ring")
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "authsvc", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "no-such-ring" in lines[0]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "no-such-ring")


def test_serve_json_prints_one_document_and_keeps_stdout_for_it(tmp_path):
    port = free_port()
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{port}")
    prepare(env)
    process = subprocess.Popen(
        [sys.executable, "-m", "authsvc", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:

        def healthy():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok
            except requests.RequestException:
                # Not listening yet, or listening while the worker still boots (a loaded machine).
                return process.poll() is not None  # exited: stop waiting, the asserts below say why

        wait_for(healthy, timeout=60, what="serve --json")
        assert requests.get(f"http://127.0.0.1:{port}/jwks.json", timeout=5).ok  # an access-log line
    finally:
        os.killpg(process.pid, 15)
        out, err = process.communicate(timeout=20)
    assert json.loads(out) == {
        "issuer": f"http://127.0.0.1:{port}",
        "bind": f"127.0.0.1:{port}",
        "workers": 1,
        "server": "gunicorn",
    }
    assert b"/jwks.json" in err

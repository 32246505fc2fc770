"""Starting and stopping a real gunicorn: SIGTERM drops no request; a start cleans up after a kill -9;
the server starts from an installed package, with no source tree beside it.
"""

import base64
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import requests

from authsvc.metrics_dir import remove_stale_metrics
from tests.servers import ROOT
from tests.servers import Instance
from tests.servers import cli_json
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import server_env

METRICS_TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def instance(tmp_path):
    port = free_port()
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{port}")
    prepare(env)
    server = Instance(env, port)
    yield server
    server.stop()


def open_connection(instance) -> http.client.HTTPConnection:
    """A kept-alive connection the worker has accepted: one request answered on it already."""
    connection = http.client.HTTPConnection("127.0.0.1", instance.port, timeout=30)
    connection.request("GET", "/healthz")
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Connection", "").lower() != "close"
    response.read()
    return connection


def read_response(connection: http.client.HTTPConnection) -> tuple[int, bytes]:
    response = http.client.HTTPResponse(connection.sock)
    response.begin()
    return response.status, response.read()


def wait_until_refused(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            return
        time.sleep(0.02)
    raise AssertionError(f"new connections to port {port} were still accepted after {timeout} s")


def test_sigterm_fails_readyz_refuses_new_connections_finishes_in_flight_requests_and_exits_0(instance):
    app = cli_json(instance.env, "clients", "create", "--name", "svc", "--grant-type", "client_credentials")
    basic = base64.b64encode(f"{app['client_id']}:{app['client_secret']}".encode()).decode()
    body = b"grant_type=client_credentials"
    # In flight: a token request whose body is still on its way; the worker waits for the rest.
    slow = open_connection(instance)
    slow.sock.sendall(
        b"POST /token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s"
        % (basic.encode(), len(body), body[:10])
    )
    # A balancer's health check on a connection it keeps open, its headers not finished yet.
    probe = open_connection(instance)
    probe.sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n")

    os.kill(instance.pid, signal.SIGTERM)
    wait_until_refused(instance.port)

    probe.sock.sendall(b"\r\n")
    status, answer = read_response(probe)
    assert (status, json.loads(answer)) == (503, {"status": "draining"})

    slow.sock.sendall(body[10:])
    status, answer = read_response(slow)
    assert status == 200, answer
    assert json.loads(answer)["token_type"] == "Bearer"

    assert instance.process.wait(timeout=30) == 0


def test_a_start_removes_the_metrics_files_a_killed_instance_left(tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # What a worker killed with kill -9 leaves behind: its counts, never marked dead.
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from authsvc.web.metrics import REQUESTS; REQUESTS.labels('/healthz', '200').inc(1000)",
        ],
        cwd=ROOT,
        env=dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)),
        check=True,
        timeout=60,
    )
    stale = list(metrics_dir.glob("counter_*.db"))
    assert stale
    port = free_port()
    env = server_env(
        tmp_path,
        issuer=f"http://127.0.0.1:{port}",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        AUTHSVC_METRICS_TOKEN=METRICS_TOKEN,
    )
    prepare(env)
    server = Instance(env, port)
    try:
        requests.get(server.url + "/healthz", timeout=10)
        metrics = requests.get(
            server.url + "/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN}, timeout=10
        )
    finally:
        server.stop()
    match = re.search(r'authsvc_http_requests_total\{endpoint="/healthz",status="200"\} (\S+)', metrics.text)
    assert match, metrics.text
    assert 1 <= float(match.group(1)) < 1000
    assert not any(path.exists() for path in stale)


def test_only_prometheus_files_are_removed(tmp_path):
    names = ["counter_12.db", "histogram_7.db", "gauge_livesum_3.db", "gauge_all_40.db", "summary_1.db"]
    kept = ["notes.db", "counter_x.db", "counter_12.db.bak", "gauge_12.db", "README"]
    for name in names + kept:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "histogram_8.db").mkdir()

    assert remove_stale_metrics(str(tmp_path)) == len(names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + ["histogram_8.db"])
    # A directory the operator named but did not create yet is made, empty.
    assert remove_stale_metrics(str(tmp_path / "new")) == 0 and (tmp_path / "new").is_dir()


def test_serve_starts_from_an_installed_package_without_the_source_tree(tmp_path):
    """As from the wheel: the package importable, and no wsgi.py anywhere on the path."""
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "authsvc").symlink_to(ROOT / "authsvc")
    workdir = tmp_path / "empty"
    workdir.mkdir()
    port = free_port()
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{port}", PYTHONPATH=str(site))
    prepare(env)
    log = tmp_path / "serve.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "authsvc", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=workdir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    assert response.status == 200
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    assert server.returncode == 0

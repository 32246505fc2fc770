"""AUTHSVC_METRICS_BIND through a real gunicorn: /metrics on its own address, summed over every worker.

The gunicorn arbiter serves the scrapes on that address; the issuer's port
answers 404 for /metrics, and the metrics port serves nothing else.
"""

import os
import socket
import subprocess
import sys

import pytest
import requests

from tests.servers import ROOT
from tests.servers import Instance
from tests.servers import cli_json
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import server_env


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e-metrics-bind")
    port, metrics_port = free_port(), free_port()
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{port}", AUTHSVC_METRICS_BIND=f"127.0.0.1:{metrics_port}")
    prepare(env)
    made = cli_json(
        env, "clients", "create", "--name", "m", "--grant-type", "client_credentials", "--scope", "api:read"
    )
    server = Instance(env, port, workers=2)
    server.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    server.metrics_port = metrics_port
    server.credentials = (made["client_id"], made["client_secret"])
    yield server
    server.stop()


def token_requests(body: str, status: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("authsvc_http_requests_total{")
        and 'endpoint="/token"' in line
        and f'status="{status}"' in line
    )


def test_metrics_are_served_on_their_own_bind_for_every_worker(instance):
    before = requests.get(instance.metrics_url, timeout=5)
    assert before.status_code == 200 and before.headers["Content-Type"].startswith("text/plain")
    # New connections each: with two workers both get requests.
    for _ in range(10):
        response = requests.post(
            instance.url + "/token", data={"grant_type": "client_credentials"}, auth=instance.credentials, timeout=5
        )
        assert response.status_code == 200
    body = requests.get(instance.metrics_url, timeout=5).text
    assert token_requests(body, "200") == token_requests(before.text, "200") + 10
    assert instance.credentials[1] not in body


def test_the_issuer_port_does_not_serve_metrics(instance):
    assert requests.get(instance.url + "/metrics", timeout=5).status_code == 404
    assert requests.get(instance.url + "/healthz", timeout=5).status_code == 200


def test_the_metrics_port_serves_nothing_else(instance):
    base = instance.metrics_url.removesuffix("/metrics")
    for path in ("/", "/token", "/healthz", "/jwks.json", "/.well-known/openid-configuration"):
        assert requests.get(base + path, timeout=5).status_code == 404, path
    assert requests.post(base + "/token", data={"grant_type": "client_credentials"}, timeout=5).status_code == 404


def test_only_the_arbiter_listens_on_the_metrics_port(instance):
    """The workers close the listening socket they inherited: a scrape is answered by one process only."""
    inode = _listening_inode(instance.metrics_port)
    holders = [pid for pid in _group_pids(instance.pid) if _holds_socket(pid, inode)]
    assert holders == [instance.pid]


def test_serve_stops_with_one_line_when_the_metrics_bind_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = free_port()
        env = server_env(
            tmp_path,
            issuer=f"http://127.0.0.1:{port}",
            AUTHSVC_METRICS_BIND=f"127.0.0.1:{taken.getsockname()[1]}",
        )
        prepare(env)
        result = subprocess.run(
            [sys.executable, "-m", "authsvc", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("authsvc:")]
    assert len(errors) == 1 and "AUTHSVC_METRICS_BIND" in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def _listening_inode(port: int) -> str:
    with open("/proc/net/tcp") as table:
        for row in table.read().splitlines()[1:]:
            fields = row.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                return fields[9]
    raise AssertionError(f"nothing listens on {port}")


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    pids.append(int(entry))
            except ProcessLookupError:
                pass
    return sorted(pids)


def _holds_socket(pid: int, inode: str) -> bool:
    fd_dir = f"/proc/{pid}/fd"
    try:
        return any(os.readlink(os.path.join(fd_dir, fd)) == f"socket:[{inode}]" for fd in os.listdir(fd_dir))
    except (FileNotFoundError, ProcessLookupError):
        return False

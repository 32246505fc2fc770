"""Three authsvc hosts, a verifier host and HAProxy, on the real PostgreSQL and Redis.

The fleet is built once per module (namespaces, balancer, instances) and every
test leaves it as it found it: all hosts up, no partition. Where namespaces
cannot be made the tests skip with the reason; under CI=true they fail.
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from tests.cluster import lab
from tests.dbs import postgres_url_or_skip
from tests.servers import ROOT
from tests.servers import cli_json
from tests.servers import free_port
from tests.servers import prepare
from tests.services_available import redis_url_or_skip

pytestmark = pytest.mark.cluster

ISSUER_HOSTS = ["h1", "h2", "h3"]
VERIFIER_AUDIENCE = "https://api.cluster.test"


def _unavailable(reason: str) -> None:
    message = f"multi-host tests need network namespaces and HAProxy: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class Host:
    """One authsvc instance (gunicorn) inside its own namespace."""

    def __init__(self, name: str, env: dict, tmp: Path):
        self.name = name
        self.env = env
        self.tmp = tmp
        self.process = None

    def start(self) -> None:
        argv = [
            "ip", "netns", "exec", lab.ns_name(self.name),
            sys.executable, "-m", "authsvc", "serve", "--bind", f"{lab.HOSTS[self.name]}:8000", "--workers", "1",
        ]  # fmt: skip
        self.process = lab.Process(argv, self.tmp / f"{self.name}.log", env=self.env)

    def terminate(self) -> int:
        """SIGTERM, as an orchestrator stops an instance; return its exit status."""
        self.process.signal(15)
        return self.process.wait(timeout=40)

    def kill(self) -> None:
        self.process.signal(9)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class Verifier:
    """authsvc.verify in the verifier's namespace, driven over a pipe."""

    def __init__(self, issuer: str, redis_url: str | None, tmp: Path, poll: float, staleness: float):
        argv = [
            "ip", "netns", "exec", lab.ns_name("v1"),
            sys.executable, str(ROOT / "tests/cluster/verifier_agent.py"),
            issuer, VERIFIER_AUDIENCE, redis_url or "", str(poll), str(staleness),
        ]  # fmt: skip
        self.stderr = open(tmp / "verifier.log", "ab")
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True, start_new_session=True
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.lines.get(timeout=30)
        assert first == {"ready": True}, first
        self.lock = threading.Lock()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def verify(self, token: str) -> dict:
        with self.lock:
            self.process.stdin.write(json.dumps({"token": token}) + "\n")
            self.process.stdin.flush()
            return self.lines.get(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        self.stderr.close()


class Fleet:
    def __init__(self, tmp: Path, extra_env: dict | None = None):
        self.tmp = tmp
        self.lb_port = free_port()
        self.issuer = f"http://127.0.0.1:{self.lb_port}"
        root_db = postgres_url_or_skip()
        root_redis = redis_url_or_skip()
        self.root_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
        self.root_env.update(
            AUTHSVC_ISSUER=self.issuer,
            AUTHSVC_DATABASE_URL=root_db,
            AUTHSVC_KEYS_DIR=str(tmp / "keys"),
            AUTHSVC_REDIS_URL=root_redis,
            PYTHONPATH=str(ROOT),
        )
        self.root_env.update(extra_env or {})
        # Inside the lab, PostgreSQL and Redis are reached through the balancer's addresses.
        lab_db = sa.make_url(root_db).set(host=lab.PG_ADDR, port=5432).render_as_string(hide_password=False)
        self.lab_redis = f"redis://{lab.REDIS_ADDR}:6379/0"
        self.host_env = dict(self.root_env, AUTHSVC_DATABASE_URL=lab_db, AUTHSVC_REDIS_URL=self.lab_redis)
        # The schema first: a database key ring lives in it.
        cli_json(self.root_env, "db", "upgrade")
        prepare(self.root_env)
        made = cli_json(
            self.root_env, "clients", "create", "--name", "cluster service", "--grant-type", "client_credentials",
            "--scope", "api:read", "--audience", VERIFIER_AUDIENCE,
        )  # fmt: skip
        self.client_id, self.secret = made["client_id"], made["client_secret"]
        self.balancer = self.relay = None
        self.hosts = {}
        try:
            self._start_processes(tmp)
        except BaseException:
            # A fleet that fails to come up leaves no process behind: the fixture never gets it to stop.
            self.stop()
            raise
        self.http = requests.Session()

    def _start_processes(self, tmp: Path) -> None:
        self.balancer = lab.Balancer(tmp, self.lb_port, ISSUER_HOSTS)
        self.relay = lab.Process(
            [
                "ip", "netns", "exec", lab.ns_name("v1"), "socat",
                f"TCP-LISTEN:{self.lb_port},bind=127.0.0.1,fork,reuseaddr", f"TCP:{lab.VIP}:80,connect-timeout=1",
            ],
            tmp / "relay.log",
        )  # fmt: skip
        self.hosts = {name: Host(name, self.host_env, tmp) for name in ISSUER_HOSTS}
        for host in self.hosts.values():
            host.start()
        for name in ISSUER_HOSTS:
            self.balancer.wait_status(name, "UP", timeout=40)

    def token(self, timeout: float = 10.0) -> requests.Response:
        return self.http.post(
            self.issuer + "/token",
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.secret),
            timeout=timeout,
        )

    def only(self, host: str):
        """Route every request to ``host`` (the others set to maintenance) until the block ends."""
        return _Pinned(self.balancer, host)

    def stop(self) -> None:
        for host in self.hosts.values():
            host.stop()
        if self.relay is not None:
            self.relay.stop(timeout=5)
        if self.balancer is not None:
            self.balancer.stop()


class _Pinned:
    def __init__(self, balancer, host):
        self.balancer, self.host = balancer, host

    def __enter__(self):
        for other in ISSUER_HOSTS:
            if other != self.host:
                self.balancer.command(f"disable server issuers/{other}")
        return self

    def __exit__(self, *exc):
        for other in ISSUER_HOSTS:
            self.balancer.command(f"enable server issuers/{other}")
        for other in ISSUER_HOSTS:
            self.balancer.wait_status(other, "UP", timeout=20)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    try:
        lab.check_available()
    except lab.LabUnavailable as error:
        _unavailable(str(error))
    tmp = tmp_path_factory.mktemp("cluster")
    lab.build_network()
    fleet = None
    try:
        fleet = Fleet(tmp)
        yield fleet
    finally:
        if fleet is not None:
            fleet.stop()
        lab.teardown_network()


@pytest.fixture
def healthy(fleet):
    """Every test starts and ends with all hosts up and no partition."""
    for name in ISSUER_HOSTS:
        fleet.balancer.wait_status(name, "UP", timeout=30)
    yield fleet
    for name in list(lab.HOSTS):
        for target in lab.TARGETS:
            lab.heal(name, target)
    for name, host in fleet.hosts.items():
        fleet.balancer.ready(name)
        fleet.balancer.command(f"enable server issuers/{name}")
        if not host.process.alive():
            host.start()
    for name in ISSUER_HOSTS:
        fleet.balancer.wait_status(name, "UP", timeout=40)


class Load:
    """Client-credentials requests through the balancer from a few threads, bounded in time and count."""

    def __init__(self, fleet: Fleet, threads: int = 4, max_requests: int = 20000, max_seconds: float = 120.0):
        self.fleet = fleet
        self.stop_flag = threading.Event()
        self.results: list[tuple[float, int | str]] = []
        # (start, seconds) of every request, for latency figures.
        self.latencies: list[tuple[float, float]] = []
        self.lock = threading.Lock()
        self.max_requests = max_requests
        self.deadline = time.monotonic() + max_seconds
        self.workers = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for worker in self.workers:
            worker.start()

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop_flag.is_set() and time.monotonic() < self.deadline:
            with self.lock:
                if len(self.results) >= self.max_requests:
                    return
            started = time.monotonic()
            try:
                response = session.post(
                    self.fleet.issuer + "/token",
                    data={"grant_type": "client_credentials"},
                    auth=(self.fleet.client_id, self.fleet.secret),
                    timeout=30,
                )
                outcome = response.status_code
            except requests.RequestException as error:
                outcome = type(error).__name__
            with self.lock:
                self.results.append((started, outcome))
                self.latencies.append((started, time.monotonic() - started))

    def stop(self) -> list:
        self.stop_flag.set()
        for worker in self.workers:
            worker.join(timeout=60)
        return self.results

    def count(self) -> int:
        with self.lock:
            return len(self.results)

    def failures(self, since: float = 0.0) -> list:
        with self.lock:
            return [r for r in self.results if r[0] >= since and r[1] != 200]

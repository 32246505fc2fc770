"""A small network of hosts on one machine: Linux network namespaces, veth pairs and HAProxy.

Layout (every address lives inside namespaces this module creates; nothing is
added to the machine's own network)::

    root namespace          127.0.0.1:<lb port> ─┐   HAProxy (one process, root namespace)
                                                 │   binds inside the lab with `namespace`
    aslab-lan   br0  10.213.0.1  issuer VIP ─────┤   → h1..h3:8000, health-checked on /readyz
                     10.213.0.2  PostgreSQL ─────┤   → 127.0.0.1:5432 (root namespace)
                     10.213.0.3  Redis      ─────┘   → 127.0.0.1:6379 (root namespace)
     ├─ veth ─ aslab-h1  10.213.0.11   an authsvc instance
     ├─ veth ─ aslab-h2  10.213.0.12
     ├─ veth ─ aslab-h3  10.213.0.13
     └─ veth ─ aslab-v1  10.213.0.21   a verifier; socat makes 127.0.0.1:<lb port> reach the VIP

The issuer URL is ``http://127.0.0.1:<lb port>`` everywhere: in the root
namespace through HAProxy's loopback bind, in the verifier's namespace through
its socat relay, so tokens carry one ``iss`` that every party can fetch.

A partition is a blackhole route in one host's namespace: packets to the
PostgreSQL, Redis or issuer address are dropped silently, as on a real cut.
Set-up first removes whatever an earlier, interrupted run left behind; tear-down
removes namespaces and links and stops every process it started, by PID.
"""

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PREFIX = "aslab"
SUBNET = "10.213.0"
LAN = f"{PREFIX}-lan"
VIP = f"{SUBNET}.1"
PG_ADDR = f"{SUBNET}.2"
REDIS_ADDR = f"{SUBNET}.3"
HOSTS = {"h1": f"{SUBNET}.11", "h2": f"{SUBNET}.12", "h3": f"{SUBNET}.13", "v1": f"{SUBNET}.21"}
TARGETS = {"pg": PG_ADDR, "redis": REDIS_ADDR, "issuer": VIP}


class LabUnavailable(Exception):
    """Namespaces or HAProxy cannot be had on this machine (not root, no iproute2, no haproxy)."""


def ns_name(host: str) -> str:
    return f"{PREFIX}-{host}"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def in_ns(host_ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ip", "netns", "exec", host_ns, *argv, check=check)


def check_available() -> None:
    """Raise LabUnavailable with the reason when the lab cannot be built here."""
    if os.geteuid() != 0:
        raise LabUnavailable("network namespaces need root")
    for tool in ("ip", "haproxy", "socat"):
        if shutil.which(tool) is None:
            raise LabUnavailable(f"{tool} is not installed (apt-get install iproute2 haproxy socat)")
    probe = f"{PREFIX}-probe"
    sh("ip", "netns", "del", probe, check=False)
    made = sh("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        raise LabUnavailable(f"ip netns add failed: {made.stderr.strip()}")
    sh("ip", "netns", "del", probe, check=False)


def teardown_network() -> None:
    """Remove every namespace of the lab (and with them their veth ends). Idempotent."""
    listed = sh("ip", "netns", "list", check=False).stdout.split("\n")
    for line in listed:
        name = line.split(" ")[0].strip()
        if name.startswith(PREFIX + "-"):
            sh("ip", "netns", "del", name, check=False)
    # A veth whose peer namespace vanished disappears with it; a root-side leftover cannot exist
    # because every link is created directly inside the lab's namespaces.
    unguard_root_namespace()


def guard_root_namespace() -> None:
    """Make the lab's subnet unroutable from the machine's own namespace.

    Only processes inside the lab may reach its addresses; a connection that
    was meant for the lab but opened from the root namespace by mistake fails
    at once instead of leaving the machine through its default route.
    """
    sh("ip", "route", "replace", "blackhole", f"{SUBNET}.0/24")


def unguard_root_namespace() -> None:
    sh("ip", "route", "del", "blackhole", f"{SUBNET}.0/24", check=False)


def build_network() -> None:
    teardown_network()
    guard_root_namespace()
    sh("ip", "netns", "add", LAN)
    in_ns(LAN, "ip", "link", "set", "lo", "up")
    in_ns(LAN, "ip", "link", "add", "br0", "type", "bridge")
    for addr in (VIP, PG_ADDR, REDIS_ADDR):
        in_ns(LAN, "ip", "addr", "add", f"{addr}/24", "dev", "br0")
    in_ns(LAN, "ip", "link", "set", "br0", "up")
    for host, addr in HOSTS.items():
        name = ns_name(host)
        sh("ip", "netns", "add", name)
        in_ns(name, "ip", "link", "set", "lo", "up")
        # Both ends are made inside the lab's namespaces: the machine's own namespace never
        # holds a link or an address of the lab.
        in_ns(LAN, "ip", "link", "add", f"v{host}", "type", "veth", "peer", "name", "eth0", "netns", name)
        in_ns(LAN, "ip", "link", "set", f"v{host}", "master", "br0", "up")
        in_ns(name, "ip", "addr", "add", f"{addr}/24", "dev", "eth0")
        in_ns(name, "ip", "link", "set", "eth0", "up")


def partition(host: str, target: str) -> None:
    """Drop every packet from ``host`` to ``target`` (pg, redis or issuer)."""
    in_ns(ns_name(host), "ip", "route", "replace", "blackhole", f"{TARGETS[target]}/32")


def heal(host: str, target: str) -> None:
    in_ns(ns_name(host), "ip", "route", "del", "blackhole", f"{TARGETS[target]}/32", check=False)


class Process:
    """A process the lab started, in its own process group; stopped only by its PID."""

    def __init__(self, argv: list, log_path: Path, env: dict | None = None):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(
            argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            os.killpg(self.process.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 25.0) -> None:
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()

    def read_log(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


HAPROXY_CFG = """\
global
    stats socket {stats} level admin
    maxconn 2000
    log stdout format raw local0 info

defaults
    log global
    option httplog
    option dontlog-normal
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s

frontend pg
    mode tcp
    bind {pg}:5432 namespace {lan}
    default_backend pg_root
backend pg_root
    mode tcp
    server pg 127.0.0.1:5432

frontend redis
    mode tcp
    bind {redis}:6379 namespace {lan}
    default_backend redis_root
backend redis_root
    mode tcp
    server redis 127.0.0.1:6379

frontend issuer
    mode http
    bind 127.0.0.1:{lb_port}
    bind {vip}:80 namespace {lan}
    default_backend issuers
backend issuers
    mode http
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host lab.internal
    http-check expect status 200
    # A connection an instance refused goes to another one. A request that reached an instance
    # is never replayed: a code or a refresh token is single-use.
    option redispatch
    retries 3
    retry-on conn-failure
    default-server inter {inter_ms}ms fall 2 rise 1
{servers}
"""


class Balancer:
    """HAProxy in the root namespace: the issuer's load balancer and the lab's path to PostgreSQL and Redis."""

    inter = 0.5

    def __init__(self, tmp: Path, lb_port: int, hosts: list):
        self.stats_path = tmp / "haproxy.sock"
        cfg = tmp / "haproxy.cfg"
        servers = "\n".join(f"    server {h} {HOSTS[h]}:8000 namespace {LAN} check" for h in hosts)
        cfg.write_text(
            HAPROXY_CFG.format(
                stats=self.stats_path,
                pg=PG_ADDR,
                redis=REDIS_ADDR,
                vip=VIP,
                lan=LAN,
                lb_port=lb_port,
                inter_ms=int(self.inter * 1000),
                servers=servers,
            )
        )
        check = sh("haproxy", "-c", "-f", str(cfg), check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy config: {check.stdout} {check.stderr}")
        self.process = Process(["haproxy", "-db", "-f", str(cfg)], tmp / "haproxy.log")
        try:
            wait_until(lambda: self.stats_path.exists() and self._try_stats() is not None, 10, "haproxy stats socket")
        except BaseException:
            self.process.stop(timeout=5)
            raise

    def _try_stats(self):
        try:
            return self.command("show stat")
        except OSError:
            return None

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(self.stats_path))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def status(self) -> dict:
        """{server: "UP" | "DOWN" | "MAINT" | …} of the issuer backend."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            r["svname"]: r["status"].split(" ")[0]
            for r in rows
            if r["pxname"] == "issuers" and r["svname"] not in ("BACKEND", "FRONTEND")
        }

    def sessions(self, host: str) -> int:
        """Connections the balancer has open to ``host`` right now."""
        text = self.command("show stat").lstrip("# ")
        for row in csv.DictReader(io.StringIO(text)):
            if row["pxname"] == "issuers" and row["svname"] == host:
                return int(row["scur"] or 0)
        raise KeyError(host)

    def drain(self, host: str, timeout: float = 30.0) -> None:
        """Send ``host`` no new requests and wait until its requests in flight are done."""
        self.command(f"set server issuers/{host} state drain")
        wait_until(lambda: self.sessions(host) == 0, timeout, f"{host} drained")

    def ready(self, host: str) -> None:
        self.command(f"set server issuers/{host} state ready")

    def wait_status(self, host: str, wanted: str, timeout: float = 15.0) -> float:
        """Wait until ``host`` shows ``wanted``; return the seconds it took."""
        started = time.monotonic()
        wait_until(lambda: self.status().get(host) == wanted, timeout, f"{host} {wanted} at the balancer")
        return time.monotonic() - started

    def stop(self) -> None:
        self.process.stop(timeout=5)


def wait_until(check, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)

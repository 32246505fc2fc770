"""Keep-alive connections opened at once are spread over gunicorn's workers (``FairThreadWorker``).

Before, the first worker to wake often took every connection of a burst, and
a client's whole keep-alive pool then ran on one core. The test opens a pool
of connections in one go, keeps them open with a request each, and counts
which worker holds each one, from /proc.
"""

import os
import socket
import subprocess
import time

import pytest

from tests.servers import Instance
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import server_env

POOL = 16
WORKERS = 2

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="counts connections from Linux's /proc")


@pytest.fixture
def instance(tmp_path):
    port = free_port()
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{port}")
    prepare(env)
    server = Instance(env, port, workers=WORKERS)
    # /healthz answered by one worker says nothing of the other: wait until both have loaded the app.
    deadline = time.monotonic() + 60
    while server.read_log().count("Worker ready") < WORKERS:
        assert time.monotonic() < deadline, server.read_log()[-2000:]
        time.sleep(0.05)
    yield server
    server.stop()


def established_inodes(port: int) -> set[str]:
    """Socket inodes of the server side of established loopback connections to ``port``."""
    inodes = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":
                inodes.add(fields[9])
    return inodes


def connections_per_worker(instance) -> dict[int, int]:
    inodes = established_inodes(instance.port)
    children = subprocess.run(["pgrep", "-P", str(instance.pid)], capture_output=True, text=True).stdout.split()
    counts = {}
    for pid in map(int, children):
        held = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                held += 1
        counts[pid] = held
    return counts


def test_a_burst_of_keep_alive_connections_reaches_every_worker(instance):
    pool = [socket.socket() for _ in range(POOL)]
    try:
        for sock in pool:
            sock.settimeout(10)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", instance.port))
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for sock in pool:
            sock.setblocking(True)
            sock.sendall(request)
        for sock in pool:
            # Answered: accepted by a worker, and kept open (keep-alive) by it.
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        counts = connections_per_worker(instance)
        assert len(counts) == WORKERS and sum(counts.values()) == POOL, counts
        assert min(counts.values()) >= POOL // 4, counts
    finally:
        for sock in pool:
            sock.close()

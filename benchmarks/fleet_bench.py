"""A fleet under restarts, crashes, partitions and key rotation: what clients and verifiers see.

Builds the multi-host lab of ``tests/cluster`` (three hosts in network
namespaces behind HAProxy, on the local PostgreSQL and Redis; needs root,
iproute2, haproxy and socat), drives client-credentials requests through the
balancer from a few threads, and measures:

- requests and failures during a rolling restart (drain at the balancer, SIGTERM, start, wait UP;
  one host after another);
- requests and failures around a ``kill -9`` of one host, and the time until the balancer drains it;
- the time from cutting a host off from PostgreSQL to the balancer draining it;
- rotation pickup: from ``keys rotate`` returning to the first token signed by the new key,
  with the key ring in files and in the database;
- the worst token-request latency while rotating with 50 retired keys in the ring.

    sudo .venv/bin/python benchmarks/fleet_bench.py [--json out.json]
"""

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster import lab  # noqa: E402
from tests.cluster.conftest import ISSUER_HOSTS  # noqa: E402
from tests.cluster.conftest import Fleet  # noqa: E402
from tests.cluster.conftest import Load  # noqa: E402
from tests.servers import run_cli  # noqa: E402


def wait_more(load, count, timeout=60.0):
    target = load.count() + count
    lab.wait_until(lambda: load.count() >= target, timeout, f"{count} more requests")


def rolling_restart(fleet):
    load = Load(fleet, threads=4, max_seconds=300)
    try:
        wait_more(load, 100)
        for name in ISSUER_HOSTS:
            host = fleet.hosts[name]
            fleet.balancer.drain(name)
            host.terminate()
            host.start()
            fleet.balancer.ready(name)
            fleet.balancer.wait_status(name, "UP", timeout=60)
            wait_more(load, 50)
    finally:
        results = load.stop()
    return {"requests": len(results), "failures": sum(1 for _, o in results if o != 200)}


def kill_9(fleet):
    load = Load(fleet, threads=4, max_seconds=300)
    try:
        wait_more(load, 100)
        killed = time.monotonic()
        fleet.hosts["h2"].kill()
        drained = fleet.balancer.wait_status("h2", "DOWN", timeout=30)
        wait_more(load, 200)
    finally:
        results = load.stop()
    fleet.hosts["h2"].start()
    fleet.balancer.wait_status("h2", "UP", timeout=60)
    return {
        "requests": len(results),
        "failures": sum(1 for _, o in results if o != 200),
        "failures_after_kill": sum(1 for t, o in results if t >= killed - 1 and o != 200),
        "drain_seconds": round(drained, 3),
    }


def partition_drain(fleet, trials=3):
    times = []
    for _ in range(trials):
        lab.partition("h1", "pg")
        times.append(fleet.balancer.wait_status("h1", "DOWN", timeout=30))
        lab.heal("h1", "pg")
        fleet.balancer.wait_status("h1", "UP", timeout=60)
    return {"drain_seconds": [round(t, 3) for t in times], "median": round(statistics.median(times), 3)}


def kid_of(fleet):
    response = fleet.token()
    response.raise_for_status()
    return jwt.get_unverified_header(response.json()["access_token"])["kid"]


def rotation_pickup(fleet, trials=3):
    """Seconds from `keys rotate` returning until every host signs with the new key."""
    times, worst_latency = [], 0.0
    for _ in range(trials):
        before = kid_of(fleet)
        rotated = run_cli(fleet.root_env, "keys", "rotate", "--force")
        if rotated.returncode != 0:
            return {"error": rotated.stderr.strip()}
        started = time.monotonic()
        seen = set()
        deadline = started + 30
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            kid = kid_of(fleet)
            worst_latency = max(worst_latency, time.monotonic() - t0)
            if kid != before:
                seen.add(kid)
                # Every host has moved on once a full round-robin turn sees no old kid.
                if all(kid_of(fleet) != before for _ in ISSUER_HOSTS):
                    break
        times.append(time.monotonic() - started)
    return {"pickup_seconds": [round(t, 3) for t in times], "worst_latency_ms": round(worst_latency * 1000, 1)}


def rotation_latency_with_retired_keys(fleet, retired=50):
    for _ in range(retired):
        result = run_cli(fleet.root_env, "keys", "rotate", "--force")
        if result.returncode != 0:
            return {"error": result.stderr.strip()}
    load = Load(fleet, threads=4, max_seconds=120)
    try:
        wait_more(load, 50)
        started = time.monotonic()
        for _ in range(3):
            run_cli(fleet.root_env, "keys", "rotate", "--force")
            wait_more(load, 100)
    finally:
        results = load.stop()
    during = sorted(seconds for t, seconds in load.latencies if t >= started)
    return {
        "requests": len(results),
        "failures": sum(1 for _, o in results if o != 200),
        "worst_latency_ms": round(during[-1] * 1000, 1) if during else None,
        "p99_latency_ms": round(during[int(len(during) * 0.99) - 1] * 1000, 1) if during else None,
        "keys_in_ring": len(json.loads(run_cli(fleet.root_env, "keys", "list", "--json").stdout or "[]")),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--key-store", choices=["files", "database"], default="files")
    args = parser.parse_args()
    lab.check_available()
    lab.build_network()
    fleet = None
    report = {}
    try:
        tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
        extra = {}
        if args.key_store == "database":
            extra = {
                "AUTHSVC_KEY_STORE": "database",
                "AUTHSVC_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(32),
                "AUTHSVC_KEYS_DIR": str(tmp / "unused-keys"),
            }
        report["key_store"] = args.key_store
        fleet = Fleet(tmp, extra)
        report["rolling_restart"] = rolling_restart(fleet)
        print("rolling restart:", report["rolling_restart"], flush=True)
        report["kill_9"] = kill_9(fleet)
        print("kill -9:", report["kill_9"], flush=True)
        report["partition_from_postgresql"] = partition_drain(fleet)
        print("partition → drained:", report["partition_from_postgresql"], flush=True)
        report["rotation_pickup"] = rotation_pickup(fleet)
        print("rotation pickup:", report["rotation_pickup"], flush=True)
        report["rotation_with_50_retired_keys"] = rotation_latency_with_retired_keys(fleet)
        print("rotation with 50 retired keys:", report["rotation_with_50_retired_keys"], flush=True)
    finally:
        if fleet is not None:
            fleet.stop()
        lab.teardown_network()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

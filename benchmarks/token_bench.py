"""Client-credentials tokens per second by gunicorn worker count.

Starts real gunicorn instances on loopback (1, 2 and 4 workers, sharing one
SQLite store and key ring), sends a bounded number of token requests from
two client processes, and prints each rate with its ratio to the one-worker
baseline measured in the same run.

    .venv/bin/python benchmarks/token_bench.py [--requests 2000]
"""

import argparse
import base64
import http.client
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import Instance  # noqa: E402
from tests.servers import cli_json  # noqa: E402
from tests.servers import free_port  # noqa: E402
from tests.servers import prepare  # noqa: E402
from tests.servers import server_env  # noqa: E402


def _client(args):
    port, auth, count = args
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = "grant_type=client_credentials"
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
    failures = 0
    for _ in range(count):
        conn.request("POST", "/token", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        failures += response.status != 200
    conn.close()
    return failures


def measure(env, port, workers, auth, total, clients=4):
    instance = Instance(env, port, workers=workers)
    try:
        with multiprocessing.Pool(clients) as pool:
            pool.map(_client, [(port, auth, 20)] * clients)  # warm-up: keys loaded, pools open
            started = time.perf_counter()
            failures = sum(pool.map(_client, [(port, auth, total // clients)] * clients))
            elapsed = time.perf_counter() - started
    finally:
        instance.stop()
    return total / elapsed, failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = server_env(Path(tmp), issuer=f"http://127.0.0.1:{port}")
        prepare(env)
        client = cli_json(env, "clients", "create", "--name", "bench", "--scope", "api:read")
        auth = "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
        results = {}
        for workers in (1, 2, 4):
            results[workers] = measure(env, port, workers, auth, args.requests)
    baseline = results[1][0]
    print(f"{'workers':>8} {'tokens/s':>10} {'vs 1 worker':>12} {'failures':>9}")
    for workers, (rate, failures) in results.items():
        print(f"{workers:>8} {rate:>10.0f} {rate / baseline:>11.2f}x {failures:>9}")
    print(json.dumps({str(w): round(r) for w, (r, _) in results.items()}))


if __name__ == "__main__":
    main()

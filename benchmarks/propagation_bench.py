"""How long a revocation takes to reach a resource server using authsvc.verify.

Starts a real gunicorn issuer on loopback, mints client-credentials tokens,
revokes each at /revoke and times how long, from sending the revocation,
until ``TokenVerifier.verify`` rejects it: once with polling only, once with
the Redis channel as well. Each revocation is sent at a random point of the
poll cycle (right after a poll, every round would measure the worst case).
A first, uncounted round warms the verifier up. Prints median and worst case,
and Redis's ratio to the polling baseline measured in the same run.

    .venv/bin/python benchmarks/propagation_bench.py [--rounds 10] [--poll 5]
"""

import argparse
import base64
import json
import random
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from authsvc.verify import RevokedToken  # noqa: E402
from authsvc.verify import TokenVerifier  # noqa: E402
from tests.servers import Instance  # noqa: E402
from tests.servers import cli_json  # noqa: E402
from tests.servers import free_port  # noqa: E402
from tests.servers import prepare  # noqa: E402
from tests.servers import server_env  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"


def post(url, data, auth):
    request = urllib.request.Request(url, data=urllib.parse.urlencode(data).encode(), headers={"Authorization": auth})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read()


def propagation(issuer, auth, verifier, rounds, poll) -> list[float]:
    delays = []
    for _ in range(rounds + 1):
        token = json.loads(post(issuer + "/token", {"grant_type": "client_credentials"}, auth))["access_token"]
        verifier.verify(token)
        time.sleep(random.uniform(0, poll))
        started = time.perf_counter()
        post(issuer + "/revoke", {"token": token}, auth)
        deadline = started + 60
        while time.perf_counter() < deadline:
            try:
                verifier.verify(token)
            except RevokedToken:
                delays.append(time.perf_counter() - started)
                break
            time.sleep(0.005)
        else:
            raise SystemExit("revocation did not arrive within 60 s")
    return delays[1:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--poll", type=float, default=5.0, help="verifier poll interval, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        env = server_env(Path(tmp), issuer=issuer, redis_url=REDIS_URL)
        prepare(env)
        client = cli_json(env, "clients", "create", "--name", "bench", "--scope", "api:read")
        auth = "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
        instance = Instance(env, port, workers=2)
        try:
            results = {}
            for label, redis_url in (("poll", None), ("poll+redis", REDIS_URL)):
                with TokenVerifier(issuer, issuer, revocation_poll_interval=args.poll, redis_url=redis_url) as verifier:
                    results[label] = propagation(issuer, auth, verifier, args.rounds, args.poll)
        finally:
            instance.stop()
    baseline = statistics.median(results["poll"])
    print(f"poll interval {args.poll:.1f} s, {args.rounds} revocations each")
    print(f"{'mode':>12} {'median s':>9} {'max s':>7} {'vs poll':>8}")
    for label, delays in results.items():
        median = statistics.median(delays)
        print(f"{label:>12} {median:>9.3f} {max(delays):>7.3f} {median / baseline:>7.3f}x")


if __name__ == "__main__":
    main()

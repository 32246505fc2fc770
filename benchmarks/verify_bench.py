"""What offline verification costs: TokenVerifier.verify against bare jwt.decode and introspection.

Starts a real gunicorn issuer (2 workers) on loopback signing with ``--alg``, mints one
client-credentials access token, then measures in the same run, on the same token:

- ``jwt.decode``: PyJWT alone, with the issuer's published key for that token's kid
  (signature, exp/iat, iss and aud; none of the verifier's other checks);
- ``verify``: ``TokenVerifier.verify`` warm (keys cached, revocation list loaded);
- ``introspect``: RFC 7662 introspection of the token over one keep-alive HTTP connection.

The two in-process rates are per CPU-second of the calling thread, measured in alternating
slices with the best slice kept, so a noisy neighbour or drifting CPU frequency hits both
alike. Introspection is wall-clock time, as its caller would wait it. Prints the three rates
and the ratios; the issue's target is a verifier within 15% of bare ``jwt.decode``.

    .venv/bin/python benchmarks/verify_bench.py [--alg RS256|ES256|EdDSA] [--seconds 6]
"""

import argparse
import base64
import http.client
import json
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jwt  # noqa: E402

from authsvc.verify import TokenVerifier  # noqa: E402
from tests.servers import Instance  # noqa: E402
from tests.servers import cli_json  # noqa: E402
from tests.servers import free_port  # noqa: E402
from tests.servers import prepare  # noqa: E402
from tests.servers import server_env  # noqa: E402

SLICES = 21
LEEWAY = 30


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise SystemExit(f"{method} {path}: {response.status} {payload[:200]!r}")
    return json.loads(payload)


def per_second(fn, seconds: float) -> float:
    """Calls of ``fn`` per CPU-second of this thread, over about ``seconds`` of its CPU time.

    CPU time rather than wall time: on a shared machine the scheduler's pauses would
    otherwise land on whichever function happened to be running.
    """
    calls, batch = 0, 64
    started = time.thread_time()
    deadline = started + seconds
    while True:
        for _ in range(batch):
            fn()
        calls += batch
        now = time.thread_time()
        if now >= deadline:
            return calls / (now - started)


def interleaved(functions: dict, seconds: float) -> dict:
    """Best rate of each function over alternating slices of the time budget.

    The best, as ``timeit`` advises: interference only ever slows a slice down.
    """
    slice_seconds = seconds / (SLICES * len(functions))
    rates = {name: [] for name in functions}
    for _ in range(SLICES):
        for name, fn in functions.items():
            rates[name].append(per_second(fn, slice_seconds))
    return {name: max(values) for name, values in rates.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alg", choices=("RS256", "ES256", "EdDSA"), default="RS256")
    parser.add_argument("--seconds", type=float, default=6.0, help="budget for the two in-process rates")
    parser.add_argument("--introspections", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        env = server_env(Path(tmp), issuer=issuer, AUTHSVC_SIGNING_ALG=args.alg)
        prepare(env)
        client = cli_json(
            env, "clients", "create", "--name", "bench", "--grant-type", "client_credentials", "--scope", "api:read"
        )
        auth = "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
        form = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
        instance = Instance(env, port, workers=2)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            token = request(conn, "POST", "/token", "grant_type=client_credentials", form)["access_token"]
            header = jwt.get_unverified_header(token)
            assert header["alg"] == args.alg, header
            jwks = request(conn, "GET", "/jwks.json")
            key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]), algorithm=args.alg)

            def bare():
                return jwt.decode(token, key, algorithms=[args.alg], audience=issuer, issuer=issuer, leeway=LEEWAY)

            # A long poll: the background thread should not compete for the CPU being measured.
            quiet = {"revocation_poll_interval": 60, "max_revocation_staleness": 600}
            with TokenVerifier(issuer, issuer, leeway=LEEWAY, **quiet) as verifier:
                assert verifier.verify(token) == bare()
                rates = interleaved({"jwt.decode": bare, "verify": lambda: verifier.verify(token)}, args.seconds)

            conn.close()  # idle while the in-process rates ran: gunicorn has closed it
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            body = urllib.parse.urlencode({"token": token})
            assert request(conn, "POST", "/introspect", body, form)["active"] is True
            started = time.perf_counter()
            for _ in range(args.introspections):
                request(conn, "POST", "/introspect", body, form)
            rates["introspect"] = args.introspections / (time.perf_counter() - started)
            conn.close()
        finally:
            instance.stop()
    bare_rate, verify_rate = rates["jwt.decode"], rates["verify"]
    print(f"{args.alg}, one access token of {len(token)} bytes, gunicorn with 2 workers")
    print(f"{'':>12} {'per s':>9} {'us each':>8} {'vs jwt.decode':>14}")
    for name, rate in rates.items():
        print(f"{name:>12} {rate:>9.0f} {1e6 / rate:>8.1f} {rate / bare_rate:>13.3f}x")
    print("(jwt.decode and verify: per CPU-second of one thread; introspect: per wall-clock second,")
    print(" one request at a time over a keep-alive connection)")
    print(
        f"verify costs {bare_rate / verify_rate - 1:+.1%} over bare jwt.decode (target: at most +15%); "
        f"introspection costs {verify_rate / rates['introspect']:.0f}x a verify"
    )


if __name__ == "__main__":
    main()

"""authsvc's benchmark suite: one run, one table, one JSON file (``make bench``).

Every server runs on loopback, started here: ``python -m authsvc serve`` with its
defaults (one gunicorn worker per core) on a fresh SQLite store and key ring, and, for the
token endpoint, node-oidc-provider (npm, pinned in harness.py) under ``node:cluster`` with
as many workers, configured alike (client credentials, ``client_secret_basic``, JWT access
tokens for one resource, the same algorithm). wrk drives the HTTP load with bounded
duration and connections; server CPU is the user + system time of the server's whole
process tree, read from /proc around each round.

Sections (``--only``, comma-separated):

- ``token``: /token per algorithm: requests/s, p50/p99 latency, server CPU per token; rounds
  of authsvc and the peer interleaved (the order alternates), medians reported.
- ``limit``: signatures per CPU-second of one thread (cryptography), and each endpoint's
  share of that limit times the cores.
- ``verify``: ``TokenVerifier.verify`` against bare ``jwt.decode`` (same key, same checks)
  per CPU-second of one thread, and against one HTTP introspection per check, with N
  revocation-list entries loaded; the verifier's memory (tracemalloc) for each N.
- ``revocations``: /revocations answers/s with 10k entries: full list, 304, ``?since=``.
- ``login``: password logins/s over HTTP (GET /login for the CSRF token, then POST) with
  the shipped argon2id parameters, and logins per CPU-second of the server.
- ``propagation``: seconds from a /revoke call to the first rejection by a verifier, polling
  only and with Redis.

    .venv/bin/python benchmarks/run.py                      # everything, as make bench
    .venv/bin/python benchmarks/run.py --only token --algs ES256 --rounds 5
    .venv/bin/python benchmarks/run.py --quick --skip-peer  # a one-second sanity run

Nothing here asserts a speed: the table is for people, the JSON for comparing runs.
"""

import argparse
import datetime
import gc
import http.client
import json
import os
import re
import signal
import statistics
import sys
import threading
import time
import tracemalloc
import urllib.parse
from pathlib import Path

import harness
from harness import ALGS
from harness import AUDIENCE
from harness import CORES
from harness import SCOPE
from harness import TOKEN_BODY
from harness import BenchData
from harness import PeerServer
from harness import loaded_round
from harness import set_revocation_count
from harness import wrk

SECTIONS = ("token", "limit", "verify", "revocations", "login", "propagation")
# serve --server NAME; gunicorn is the default, and the key "authsvc" in the results.
HTTP_SERVERS = ("gunicorn", "granian")


def server_key(http_server: str) -> str:
    return "authsvc" if http_server == "gunicorn" else f"authsvc_{http_server}"


REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
KEYCLOAK_LOGINS_PER_VCPU = 15
LEEWAY = 30
REVOCATIONS_SERVED = 10_000
# The delta a poller typically asks for: a few entries newer than its version.
SINCE_DELTA = 10


class Options:
    """The run's parameters, from the command line with --quick's smaller defaults."""

    def __init__(self, args):
        quick = args.quick
        self.quick = quick
        self.sections = args.only
        self.algs = args.algs
        self.rounds = args.rounds or (1 if quick else 3)
        self.duration = args.duration or (1 if quick else 10)
        self.warmup = 0 if quick else 2
        self.connections = args.connections
        self.skip_peer = args.skip_peer
        self.http_servers = args.servers
        self.limit_seconds = 0.3 if quick else 2.0
        self.verify_alg = args.verify_alg
        self.verify_entries = args.verify_entries or ((0, 1000) if quick else (0, 10_000, 100_000))
        self.verify_seconds = 0.4 if quick else 6.0
        self.introspect_seconds = 0.3 if quick else 2.0
        self.login_threads = 2 if quick else 2 * CORES
        self.poll = args.poll or (1.0 if quick else 5.0)
        self.propagation_rounds = args.propagation_rounds or (2 if quick else 10)
        self.json = args.json

    def describe(self) -> dict:
        return {k: v for k, v in vars(self).items() if k != "json"}


# ---- token endpoint -------------------------------------------------------------------


def post_token(server, auth: str) -> str:
    """One token request outside wrk: the response must be a JWT access token."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
        conn.request("POST", "/token", body=TOKEN_BODY, headers=headers)
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise RuntimeError(f"{server.name} /token: {response.status} {body[:300]!r}")
    return json.loads(body)["access_token"]


def check_alike(name: str, token: str, alg: str) -> dict:
    """What a token endpoint issues: a JWT of ``alg`` for the bench audience and scope."""
    import jwt

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    if header.get("alg") != alg or claims.get("aud") != AUDIENCE or claims.get("scope") != SCOPE:
        raise RuntimeError(f"{name} issued {header} {claims}: not a {alg} JWT for {AUDIENCE} with scope {SCOPE}")
    return {"token_bytes": len(token), "header": sorted(header), "claims": sorted(claims)}


def summarise(rounds: list[dict]) -> dict:
    def median(key):
        return statistics.median(r[key] for r in rounds)

    return {
        "rps": median("rps"),
        "p50_ms": median("p50_us") / 1000,
        "p99_ms": median("p99_us") / 1000,
        "cpu_ms_per_request": median("cpu_ms_per_request"),
        "rounds": rounds,
    }


def token_section(opts: Options, data: BenchData, peer_skipped: str | None) -> dict:
    results = {}
    load = dict(seconds=opts.duration, connections=opts.connections, method="POST", body=TOKEN_BODY)
    for alg in opts.algs:
        servers = {}
        try:
            for http_server in opts.http_servers:
                servers[server_key(http_server)] = data.server(alg, http_server)
            if peer_skipped is None:
                servers["peer"] = PeerServer(data, alg)
            tokens = {name: check_alike(name, post_token(server, data.auth), alg) for name, server in servers.items()}
            if opts.warmup:
                for server in servers.values():
                    wrk(server.url + "/token", **dict(load, seconds=opts.warmup), authorization=data.auth)
                    harness.settle(server)
            rounds = {name: [] for name in servers}
            for number in range(opts.rounds):
                # Alternate who goes first, so a drift in the machine's load hits both alike.
                order = list(servers) if number % 2 == 0 else list(reversed(servers))
                for name in order:
                    rounds[name].append(loaded_round(servers[name], "/token", **load, authorization=data.auth))
                    print(f"  token {alg} round {number + 1} {name}: {rounds[name][-1]['rps']:.0f}/s", file=sys.stderr)
        finally:
            if "peer" in servers:
                servers["peer"].stop()
        entry = {name: dict(summarise(rounds[name]), issued=tokens[name]) for name in servers}
        if peer_skipped is None:
            for http_server in opts.http_servers:
                suffix = "" if http_server == "gunicorn" else f"_{http_server}"
                entry[f"ratio_rps{suffix}"] = entry[server_key(http_server)]["rps"] / entry["peer"]["rps"]
        else:
            entry["peer"] = {"not_run": peer_skipped}
        results[alg] = entry
    return results


# ---- signing limit --------------------------------------------------------------------


def signing_key(alg: str):
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives.asymmetric import rsa

    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def typical_claims() -> dict:
    now = int(time.time())
    return {
        "iss": "http://127.0.0.1:8000",
        "sub": "c_" + "x" * 16,
        "aud": AUDIENCE,
        "client_id": "c_" + "x" * 16,
        "scope": SCOPE,
        "iat": now,
        "exp": now + 600,
        "jti": "y" * 22,
    }


def signer(alg: str):
    """``sign()``: one signature of a typical access token's signing input, at the cryptography level."""
    import jwt
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric import padding

    key = signing_key(alg)
    header = {"alg": alg, "typ": "at+jwt", "kid": "k" * 43}
    claims = typical_claims()
    message = jwt.encode(claims, key, algorithm=alg, headers=header).rsplit(".", 1)[0].encode()
    if alg == "RS256":
        args = (padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        args = (ec.ECDSA(hashes.SHA256()),)
    else:
        args = ()

    def sign():
        return key.sign(message, *args)

    def encode():
        return jwt.encode(claims, key, algorithm=alg, headers=header)

    return sign, encode


def limit_section(opts: Options) -> dict:
    from verify_bench import per_second

    results = {}
    for alg in opts.algs:
        sign, encode = signer(alg)
        results[alg] = {
            "signatures_per_cpu_second": per_second(sign, opts.limit_seconds),
            "jwt_encode_per_cpu_second": per_second(encode, opts.limit_seconds),
            "cores": CORES,
        }
    return results


# ---- authsvc.verify -------------------------------------------------------------------


def http_json(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {payload[:200]!r}")
    return json.loads(payload)


def introspections_per_second(server, auth: str, token: str, seconds: float) -> float:
    """Wall-clock introspections/s, one at a time over a keep-alive connection, as a resource server would wait."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = urllib.parse.urlencode({"token": token})
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
    try:
        if http_json(conn, "POST", "/introspect", body, headers)["active"] is not True:
            raise RuntimeError("introspection calls the bench token inactive")
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            http_json(conn, "POST", "/introspect", body, headers)
            calls += 1
        return calls / elapsed
    finally:
        conn.close()


def loaded_entries(verifier) -> int | None:
    """How many revocation entries the verifier holds (an internal attribute, read only to check the setup)."""
    snapshot = getattr(getattr(verifier, "_revocations", None), "snapshot", None)
    return None if snapshot is None else len(snapshot.entries)


def verify_section(opts: Options, data: BenchData) -> dict:
    import jwt
    from verify_bench import interleaved

    from authsvc.verify import TokenVerifier

    alg = opts.verify_alg
    server = data.server(alg)
    issuer = server.url
    token = post_token(server, data.auth)
    results = {"alg": alg, "token_bytes": len(token), "entries": {}}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    jwks = http_json(conn, "GET", "/jwks.json")
    conn.close()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid), algorithm=alg)

    def bare():
        return jwt.decode(token, key, algorithms=[alg], audience=AUDIENCE, issuer=issuer, leeway=LEEWAY)

    # A long poll: the background thread must not compete for the CPU being measured.
    quiet = {"leeway": LEEWAY, "revocation_poll_interval": 60, "max_revocation_staleness": 600}
    for count in opts.verify_entries:
        set_revocation_count(data.database_url, count, exp=time.time() + 3600)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        verifier = TokenVerifier(issuer, AUDIENCE, **quiet)
        try:
            if verifier.verify(token) != bare():
                raise RuntimeError("TokenVerifier.verify and jwt.decode disagree on the bench token")
            gc.collect()
            memory = tracemalloc.get_traced_memory()[0] - base
            tracemalloc.stop()
            held = loaded_entries(verifier)
            if held is not None and held != count:
                raise RuntimeError(f"the verifier holds {held} revocation entries, not {count}")
            rates = interleaved({"jwt_decode": bare, "verify": lambda v=verifier: v.verify(token)}, opts.verify_seconds)
        finally:
            tracemalloc.stop()
            verifier.close()
        rates["introspect"] = introspections_per_second(server, data.auth, token, opts.introspect_seconds)
        results["entries"][str(count)] = {
            "verify_per_cpu_second": rates["verify"],
            "jwt_decode_per_cpu_second": rates["jwt_decode"],
            "introspections_per_second": rates["introspect"],
            "verify_vs_jwt_decode": rates["verify"] / rates["jwt_decode"],
            "verify_vs_introspection": rates["verify"] / rates["introspect"],
            "verifier_memory_bytes": memory,
        }
        print(f"  verify {count} entries: {rates['verify']:.0f}/s", file=sys.stderr)
    results["dpop"] = dpop_verify_cost(server, data.auth, issuer, quiet)
    return results


def dpop_verify_cost(server, auth: str, issuer: str, options: dict, checks: int = 1500) -> dict:
    """CPU per verification of a DPoP-bound token with its proof, against the same verifier's Bearer path.

    Proofs are made beforehand (each is accepted once): only the verifier's work is timed.
    """
    import base64
    import hashlib
    import uuid

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    from authsvc.verify import TokenVerifier

    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))

    def proof(method: str, url: str, token: str | None = None) -> str:
        claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
        if token:
            claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()
        return jwt.encode(claims, key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": public})

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {
            "Authorization": auth,
            "Content-Type": "application/x-www-form-urlencoded",
            "DPoP": proof("POST", f"{issuer}/token"),
        }
        conn.request("POST", "/token", body=TOKEN_BODY, headers=headers)
        answer = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    if answer.get("token_type") != "DPoP":
        raise RuntimeError(f"no DPoP-bound token: {answer}")
    bound = answer["access_token"]
    bearer = post_token(server, auth)
    url = "https://api.bench/resource"
    proofs = [proof("GET", url, bound) for _ in range(checks)]
    verifier = TokenVerifier(issuer, AUDIENCE, **options)
    try:
        verifier.verify(bearer)
        started = time.process_time()
        for _ in range(checks):
            verifier.verify(bearer)
        bearer_seconds = time.process_time() - started
        started = time.process_time()
        for one in proofs:
            verifier.verify(bound, dpop_proof=one, method="GET", url=url)
        dpop_seconds = time.process_time() - started
    finally:
        verifier.close()
    return {
        "checks": checks,
        "bearer_per_cpu_second": checks / bearer_seconds,
        "dpop_per_cpu_second": checks / dpop_seconds,
        "dpop_extra_ms": (dpop_seconds - bearer_seconds) / checks * 1000,
    }


# ---- revocation list serving ----------------------------------------------------------


def revocations_section(opts: Options, data: BenchData) -> dict:
    from authsvc.store import open_store

    now = time.time()
    set_revocation_count(data.database_url, REVOCATIONS_SERVED - SINCE_DELTA, exp=now + 3600)
    # The newest few through the store's own API, as /revoke would add them.
    store = open_store(data.database_url)
    try:
        added = store.add_revocations([("jti", f"bench-new-{i}", now + 3600, None) for i in range(SINCE_DELTA)], now)
    finally:
        store.close()
    since = added[0].version - 1
    server = data.server(opts.verify_alg)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/revocations")
    response = conn.getresponse()
    full = json.loads(response.read())
    etag = response.getheader("ETag")
    conn.request("GET", "/revocations", headers={"If-None-Match": etag})
    response = conn.getresponse()
    response.read()
    not_modified = response.status
    delta = http_json(conn, "GET", f"/revocations?since={since}")
    conn.close()
    if len(full["jti"]) != REVOCATIONS_SERVED or not_modified != 304 or len(delta["jti"]) != SINCE_DELTA:
        raise RuntimeError(
            f"/revocations served {len(full['jti'])} entries, {not_modified} for its ETag, "
            f"{len(delta['jti'])} since {since}"
        )
    load = dict(seconds=opts.duration, connections=opts.connections)
    if opts.warmup:
        wrk(server.url + "/revocations", **dict(load, seconds=opts.warmup))
        harness.settle(server)
    results = {"entries": REVOCATIONS_SERVED, "full_bytes": len(json.dumps(full, separators=(",", ":")))}
    for name, path, etag_sent in (
        ("full", "/revocations", ""),
        ("not_modified", "/revocations", etag),
        ("since", f"/revocations?since={since}", ""),
    ):
        round_ = loaded_round(server, path, **load, etag=etag_sent)
        results[name] = {
            "path": path,
            "rps": round_["rps"],
            "p50_ms": round_["p50_us"] / 1000,
            "p99_ms": round_["p99_us"] / 1000,
            "cpu_ms_per_request": round_["cpu_ms_per_request"],
        }
        print(f"  revocations {name}: {round_['rps']:.0f}/s", file=sys.stderr)
    return results


# ---- password login -------------------------------------------------------------------

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def argon2_parameters(data: BenchData, username: str) -> str | None:
    """The m, t, p of a stored hash (never the hash itself), e.g. ``m=65536,t=3,p=4``."""
    from authsvc.store import open_store

    store = open_store(data.database_url)
    try:
        stored = store.get_user_by_username(username).password_hash
    finally:
        store.close()
    parts = stored.split("$")
    return parts[3] if len(parts) > 3 and parts[1] == "argon2id" else None


def login_section(opts: Options, data: BenchData) -> dict:
    import requests

    password = "bench-password-" + "p" * 12
    users = [f"bench{i}" for i in range(opts.login_threads)]
    for user in users:
        data.add_user(user, password)
    # Each login comes from its own address behind a trusted proxy, as many users' would:
    # from one address the per-address throttle would cap the run at its limit.
    server = data.server(opts.verify_alg, AUTHSVC_TRUSTED_PROXIES="127.0.0.1/32")
    outcomes = {"ok": 0, "failed": []}
    lock = threading.Lock()

    def login(session, user, address) -> int:
        session.cookies.clear()
        headers = {"X-Forwarded-For": address}
        page = session.get(server.url + "/login", headers=headers, timeout=60)
        match = _CSRF.search(page.text)
        if page.status_code != 200 or not match:
            return page.status_code
        form = {"csrf_token": match.group(1), "username": user, "password": password, "return_to": ""}
        answer = session.post(server.url + "/login", data=form, headers=headers, allow_redirects=False, timeout=60)
        return answer.status_code

    def client(number, user, stop_at):
        with requests.Session() as session:
            sent = 0
            while time.monotonic() < stop_at:
                sent += 1
                status = login(session, user, f"10.{number}.{sent // 250 % 250}.{sent % 250 + 1}")
                with lock:
                    if status == 303:
                        outcomes["ok"] += 1
                    else:
                        outcomes["failed"].append(status)

    with requests.Session() as session:
        status = login(session, users[0], "10.255.0.1")
    if status != 303:
        raise RuntimeError(f"a password login answered {status}, not 303")
    threads = []
    cpu_before = harness.tree_cpu_seconds(server.pid)
    started = time.monotonic()
    stop_at = started + opts.duration
    for number, user in enumerate(users):
        threads.append(threading.Thread(target=client, args=(number, user, stop_at)))
        threads[-1].start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    cpu = harness.tree_cpu_seconds(server.pid) - cpu_before
    if outcomes["failed"]:
        raise RuntimeError(f"{len(outcomes['failed'])} logins failed, statuses {sorted(set(outcomes['failed']))}")
    ok = outcomes["ok"]
    return {
        "argon2id": argon2_parameters(data, users[0]),
        "clients": len(users),
        "logins": ok,
        "logins_per_second": ok / elapsed,
        "logins_per_second_per_vcpu": ok / elapsed / CORES,
        "cpu_ms_per_login": 1000 * cpu / ok if ok else None,
        "logins_per_cpu_second": ok / cpu if cpu else None,
        "keycloak_logins_per_vcpu": KEYCLOAK_LOGINS_PER_VCPU,
    }


# ---- revocation propagation -----------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: with 10 samples, p99 is the worst one."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))]


def redis_unavailable() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
    except Exception as exc:  # any failure means the same: measure polling alone
        return f"Redis at {REDIS_URL} unreachable: {type(exc).__name__}"
    return None


def propagation_section(opts: Options, data: BenchData) -> dict:
    from propagation_bench import propagation

    from authsvc.verify import TokenVerifier

    set_revocation_count(data.database_url, 0, exp=time.time() + 3600)
    no_redis = redis_unavailable()
    extra = {} if no_redis else {"AUTHSVC_REDIS_URL": REDIS_URL}
    server = data.server(opts.verify_alg, **extra)
    results = {"poll_interval": opts.poll, "revocations": opts.propagation_rounds}
    for label, redis_url in (("poll", None), ("redis", REDIS_URL)):
        if label == "redis" and no_redis:
            results[label] = {"not_run": no_redis}
            continue
        with TokenVerifier(
            server.url, AUDIENCE, leeway=LEEWAY, revocation_poll_interval=opts.poll, redis_url=redis_url
        ) as verifier:
            delays = propagation(server.url, data.auth, verifier, opts.propagation_rounds, opts.poll)
        results[label] = {"p50_s": percentile(delays, 50), "p99_s": percentile(delays, 99), "delays_s": delays}
        print(f"  propagation {label}: p99 {results[label]['p99_s']:.3f} s", file=sys.stderr)
    return results


# ---- the table ------------------------------------------------------------------------


def n(value, digits=0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def ratio(a, b) -> str:
    if not a or not b:
        return "—"
    value = a / b
    return f"{value:,.0f}×" if value >= 10 else f"{value:.2f}×" if value >= 0.1 else f"{value:.3f}×"


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def token_rows(label: str, entry: dict, key: str, limit: dict | None) -> list[tuple[str, str, str, str]]:
    """The token endpoint's rows for one of authsvc's HTTP servers, against the peer and the signing limit."""
    ours, peer = entry[key], entry["peer"]
    ran = "rps" in peer
    missing = f"not run ({peer.get('not_run')})" if not ran else None
    rows = [
        (
            f"{label}: tokens/s",
            n(ours["rps"]),
            f"node-oidc-provider: {n(peer['rps'])}" if ran else missing,
            ratio(ours["rps"], peer["rps"]) if ran else "—",
        ),
        (
            f"{label}: p50 / p99 latency",
            f"{n(ours['p50_ms'], 1)} / {n(ours['p99_ms'], 1)} ms",
            f"{n(peer['p50_ms'], 1)} / {n(peer['p99_ms'], 1)} ms" if ran else missing,
            ratio(ours["p99_ms"], peer["p99_ms"]) + " (p99)" if ran else "—",
        ),
        (
            f"{label}: server CPU per token",
            f"{n(ours['cpu_ms_per_request'], 2)} ms",
            f"{n(peer['cpu_ms_per_request'], 2)} ms" if ran else missing,
            ratio(ours["cpu_ms_per_request"], peer["cpu_ms_per_request"]) if ran else "—",
        ),
    ]
    if limit is not None:
        ceiling = limit["signatures_per_cpu_second"] * CORES
        peer_share = f"; peer {ratio(peer['rps'], ceiling)}" if ran else ""
        rows.append(
            (
                f"{label}: share of the signing limit",
                f"{n(ours['rps'])} tokens/s",
                f"{CORES} cores × {n(limit['signatures_per_cpu_second'])} signatures/s",
                ratio(ours["rps"], ceiling) + peer_share,
            )
        )
    return rows


def table_rows(results: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    token, limit = results.get("token", {}), results.get("limit", {})
    for alg, entry in token.items():
        for http_server in HTTP_SERVERS:
            if server_key(http_server) in entry:
                rows += token_rows(
                    f"Token endpoint {alg} ({http_server})", entry, server_key(http_server), limit.get(alg)
                )
    for alg, entry in limit.items():
        if alg not in token:
            rows.append(
                (
                    f"Signing limit {alg}, one core",
                    f"{n(entry['signatures_per_cpu_second'])} signatures/s",
                    f"jwt.encode: {n(entry['jwt_encode_per_cpu_second'])}/s",
                    "—",
                )
            )
    verify = results.get("verify")
    if verify:
        for count, entry in verify["entries"].items():
            label = f"authsvc.verify {verify['alg']}, {int(count):,} revoked entries: checks/s (one core)"
            rows.append(
                (
                    label,
                    n(entry["verify_per_cpu_second"]),
                    f"jwt.decode: {n(entry['jwt_decode_per_cpu_second'])}",
                    ratio(entry["verify_per_cpu_second"], entry["jwt_decode_per_cpu_second"]),
                )
            )
            rows.append(
                (
                    f"authsvc.verify {verify['alg']}, {int(count):,} revoked entries: vs introspection",
                    n(entry["verify_per_cpu_second"]),
                    f"HTTP introspection: {n(entry['introspections_per_second'])}/s",
                    ratio(entry["verify_per_cpu_second"], entry["introspections_per_second"]),
                )
            )
        dpop = verify.get("dpop")
        if dpop:
            rows.append(
                (
                    "authsvc.verify DPoP-bound token + ES256 proof: checks/s (one core)",
                    n(dpop["dpop_per_cpu_second"]),
                    f"same verifier, Bearer: {n(dpop['bearer_per_cpu_second'])}",
                    ratio(dpop["dpop_per_cpu_second"], dpop["bearer_per_cpu_second"]),
                )
            )
        largest = max(verify["entries"], key=int)
        smallest = min(verify["entries"], key=int)
        rows.append(
            (
                f"authsvc.verify memory with {int(largest):,} revoked entries",
                mib(verify["entries"][largest]["verifier_memory_bytes"]),
                f"with {int(smallest):,}: {mib(verify['entries'][smallest]['verifier_memory_bytes'])}",
                "—",
            )
        )
    served = results.get("revocations")
    if served:
        full = served["full"]["rps"]
        for name, what in (
            ("full", "full list"),
            ("not_modified", "304 (If-None-Match)"),
            ("since", f"?since= ({SINCE_DELTA} new)"),
        ):
            entry = served[name]
            rows.append(
                (
                    f"/revocations with {served['entries']:,} entries: {what}, answers/s",
                    f"{n(entry['rps'], 1)} (p99 {n(entry['p99_ms'])} ms)",
                    "—" if name == "full" else f"full list: {n(full, 1)}",
                    "—" if name == "full" else ratio(entry["rps"], full),
                )
            )
    login = results.get("login")
    if login:
        budget = KEYCLOAK_LOGINS_PER_VCPU * CORES
        rows.append(
            (
                f"Password logins/s (argon2id {login['argon2id']}, {CORES} vCPU)",
                n(login["logins_per_second"], 1),
                f"Keycloak budget: {budget}",
                ratio(login["logins_per_second"], budget),
            )
        )
        rows.append(
            (
                "Password logins per server CPU-second",
                n(login["logins_per_cpu_second"], 1),
                f"Keycloak: {KEYCLOAK_LOGINS_PER_VCPU} per vCPU",
                ratio(login["logins_per_cpu_second"], KEYCLOAK_LOGINS_PER_VCPU),
            )
        )
    propagation = results.get("propagation")
    if propagation:
        for label, what in (("poll", f"polling every {propagation['poll_interval']:g} s"), ("redis", "with Redis")):
            entry = propagation[label]
            value = (
                f"{entry['p50_s']:.2f} / {entry['p99_s']:.2f} s"
                if "p50_s" in entry
                else f"not run ({entry['not_run']})"
            )
            target = f"p99 ≤ {propagation['poll_interval'] + 0.2:g} s" if label == "poll" else "p99 ≤ 1 s"
            rows.append((f"Revocation propagation, {what}: p50 / p99", value, f"target {target}", "—"))
    return rows


def markdown_table(rows) -> str:
    header = ("Benchmark", "authsvc", "Reference", "authsvc / reference")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

    def line(cells):
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


# ---- main -----------------------------------------------------------------------------


def choices(allowed):
    def parse(text):
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        bad = [v for v in values if v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}")
        return values

    return parse


def counts(text):
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of entry counts, e.g. 0,10000") from None
    if any(v < 0 for v in values) or not values:
        raise argparse.ArgumentTypeError("entry counts must not be negative")
    return values


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s rounds, 1 round, small N: a sanity run")
    parser.add_argument("--only", type=choices(SECTIONS), default=SECTIONS, help=",".join(SECTIONS))
    parser.add_argument("--algs", type=choices(ALGS), default=ALGS, help="token and limit algorithms")
    parser.add_argument("--rounds", type=int, help="interleaved token rounds per server (default 3)")
    parser.add_argument("--duration", type=int, help="seconds per wrk round (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (one wrk thread)")
    parser.add_argument("--skip-peer", action="store_true", help="do not install or run node-oidc-provider")
    parser.add_argument(
        "--servers",
        type=choices(HTTP_SERVERS),
        default=HTTP_SERVERS,
        help="authsvc's HTTP servers at the token endpoint: " + ",".join(HTTP_SERVERS),
    )
    parser.add_argument("--verify-alg", choices=ALGS, default="RS256")
    parser.add_argument("--verify-entries", type=counts, help="revocation entries (default 0,10000,100000)")
    parser.add_argument("--poll", type=float, help="verifier poll interval for propagation, s (default 5)")
    parser.add_argument("--propagation-rounds", type=int, help="revocations timed per mode (default 10)")
    parser.add_argument("--json", type=Path, default=harness.HERE / "results" / "latest.json", help="results file")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="print the table of an earlier run's file; run nothing"
    )
    return parser.parse_args(argv)


def stop_on_signal(signum, frame):
    # An exception rather than death, so every server started here is stopped on the way out.
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        document = json.loads(args.render.read_text())
        print(headline(document["machine"], document["options"]))
        print(markdown_table(table_rows(document["results"])))
        return 0
    opts = Options(args)
    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)
    peer_skipped = None
    if "token" in opts.sections:
        if opts.skip_peer:
            peer_skipped = "--skip-peer"
        else:
            try:
                harness.install_peer()
            except RuntimeError as exc:
                print(f"run.py: node-oidc-provider: {exc}", file=sys.stderr)
                print("run.py: rerun with --skip-peer to measure authsvc alone", file=sys.stderr)
                return 2
    started = time.time()
    results = {}
    needs_data = set(opts.sections) - {"limit"}
    data = BenchData(tuple(opts.algs) + (opts.verify_alg,)) if needs_data else None
    print(f"  store, key ring and client: {time.time() - started:.1f} s", file=sys.stderr)
    error, section = None, None
    try:
        for section in SECTIONS:
            if section not in opts.sections:
                continue
            print(f"{section}…", file=sys.stderr)
            section_started = time.monotonic()
            if section == "token":
                results[section] = token_section(opts, data, peer_skipped)
            elif section == "limit":
                results[section] = limit_section(opts)
            else:
                results[section] = globals()[f"{section}_section"](opts, data)
            print(f"  {section}: {time.monotonic() - section_started:.1f} s", file=sys.stderr)
    except (Exception, SystemExit) as exc:
        # What was measured is still reported; the exit status says the run is incomplete.
        error = f"{section}: {type(exc).__name__}: {exc}"
    finally:
        if data is not None:
            data.close(show_logs=error is not None)
    report(opts, results, started, peer_skipped, error)
    if error:
        print(f"run.py: {error}", file=sys.stderr)
        return 1
    return 0


def headline(machine: dict, options: dict) -> str:
    return (
        f"{machine['cores']} vCPU ({machine['cpu']}); authsvc and node-oidc-provider with {machine['cores']} "
        f"workers each; wrk -t1 -c{options['connections']}, {options['rounds']} interleaved rounds of "
        f"{options['duration']} s, medians"
    )


def report(opts: Options, results: dict, started: float, peer_skipped: str | None, error: str | None) -> None:
    """Print the table on stdout and write the JSON file."""
    machine = {"cores": CORES, "cpu": harness.cpu_model(), **harness.tool_versions()}
    if "token" in opts.sections and peer_skipped is None:
        machine["peer"] = f"{harness.PEER_PACKAGE}@{harness.PEER_VERSION}"
    document = {
        "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(time.time() - started, 1),
        "machine": machine,
        "options": opts.describe(),
        "results": results,
    }
    if error:
        document["error"] = error
    print(headline(machine, document["options"]))
    print(markdown_table(table_rows(results)))
    opts.json.parent.mkdir(parents=True, exist_ok=True)
    opts.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"results: {opts.json}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

"""A fake authsvc issuer for the verifier's tests, and helpers to mint and forge tokens.

The issuer serves discovery, JWKS and the revocation list (ETag, ``?since=N`` deltas)
from a threading ``http.server`` on 127.0.0.1, counts every request by kind, and can be
told to fail any of its endpoints. It signs with one RS256, one ES256 and one EdDSA key.
"""

from __future__ import annotations

import base64
import collections
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa

from authsvc.verify import TokenVerifier

AUDIENCE = "https://api.example.test"
KIDS = {"RS256": "rs-1", "ES256": "es-1", "EdDSA": "ed-1"}
#: A claim override that removes the claim.
DROP = object()


def jws_header(alg: str = "RS256", **extra) -> dict:
    """An access-token header for the fake issuer's key of ``alg``, plus ``extra``."""
    return {"alg": alg, "kid": KIDS.get(alg, KIDS["RS256"]), "typ": "at+jwt", **extra}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: object) -> str:
    return b64(obj if isinstance(obj, bytes) else json.dumps(obj).encode())


@pytest.fixture(scope="session")
def private_keys():
    return {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "EdDSA": ed25519.Ed25519PrivateKey.generate(),
    }


class FakeIssuer:
    """Discovery + JWKS + revocation list, with failure switches and request counters."""

    def __init__(self, private_keys: dict) -> None:
        self.private_keys = private_keys
        self.jwks = [self.public_jwk(alg) for alg in KIDS]
        self.version = 1
        self.changes: list[tuple[int, str, dict]] = []  # (version, kind, entry)
        self.delta_floor = 0  # ?since below this answers with a full list
        self.misreport_since = False  # a buggy delta whose "since" is not what was asked
        self.failing: set[str] = set()  # endpoint names answering 503
        self.counts: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval makes shutdown() quick: one issuer per test adds up.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def public_jwk(self, alg: str) -> dict:
        key = self.private_keys[alg].public_key()
        jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(key))
        return {**jwk, "kid": KIDS[alg], "alg": alg, "use": "sig"}

    def claims(self, **overrides) -> dict:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": f"user-{uuid.uuid4().hex[:8]}",
            "aud": AUDIENCE,
            "exp": now + 600,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "client_id": "client-1",
            "scope": "read write",
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not DROP}

    def mint(self, alg: str = "RS256", *, headers: dict | None = None, **claims) -> str:
        """Sign a well-formed access token, with claim overrides (DROP removes one)."""
        header = {"alg": alg, "kid": KIDS[alg], "typ": "at+jwt", **(headers or {})}
        header = {name: value for name, value in header.items() if value is not DROP}
        return self.sign_raw(header, self.claims(**claims), alg)

    def sign_raw(self, header: dict | bytes, payload: dict | bytes, alg: str = "RS256") -> str:
        """Sign arbitrary header and payload bytes with the real key of ``alg``."""
        signing_input = f"{b64json(header)}.{b64json(payload)}"
        algorithm = jwt.get_algorithm_by_name(alg)
        signature = algorithm.sign(signing_input.encode(), self.private_keys[alg])
        return f"{signing_input}.{b64(signature)}"

    def revoke(self, kind: str, value: str, *, before: float | None = None, exp: float | None = None) -> dict:
        """Add an entry to the list; return it as a fan-out message."""
        exp = time.time() + 600 if exp is None else exp
        entry = {kind: value, "exp": exp}
        if kind in ("sub", "client_id"):
            entry["before"] = time.time() if before is None else before
        with self.lock:
            self.version += 1
            self.changes.append((self.version, kind, entry))
            return {"version": self.version, "kind": kind, "value": value, "before": entry.get("before"), "exp": exp}

    def revocation_document(self, since: int | None) -> dict:
        with self.lock:
            delta = since is not None and 0 < since <= self.version and since >= self.delta_floor
            doc = {"version": self.version, "jti": [], "sid": [], "sub": [], "client_id": []}
            for version, kind, entry in self.changes:
                if not delta or version > since:
                    doc[kind].append(entry)
            if delta:
                doc["since"] = since - 1 if self.misreport_since else since
            return doc


def _handler(issuer: FakeIssuer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            name = {
                "/.well-known/openid-configuration": "discovery",
                "/jwks": "jwks",
                "/revocations": "revocations",
            }.get(url.path)
            issuer.counts[name or "other"] += 1
            if name is None:
                return self._send(404, {"error": "not_found"})
            if name in issuer.failing:
                return self._send(503, {"error": "temporarily_unavailable"})
            if name == "discovery":
                return self._send(
                    200,
                    {
                        "issuer": issuer.issuer,
                        "jwks_uri": issuer.issuer + "/jwks",
                        "revocation_list_uri": issuer.issuer + "/revocations",
                    },
                )
            if name == "jwks":
                return self._send(200, {"keys": issuer.jwks})
            etag = f'"v{issuer.version}"'
            if self.headers.get("If-None-Match") == etag:
                issuer.counts["revocations_304"] += 1
                return self._send(304, None, etag)
            since = parse_qs(url.query).get("since")
            if since:
                issuer.counts["revocations_since"] += 1
            doc = issuer.revocation_document(int(since[0]) if since else None)
            issuer.counts["revocations_delta" if "since" in doc else "revocations_full"] += 1
            return self._send(200, doc, etag)

        def _send(self, status: int, body: dict | None, etag: str | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if etag:
                self.send_header("ETag", etag)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def issuer(private_keys):
    fake = FakeIssuer(private_keys)
    yield fake
    fake.close()


@pytest.fixture
def make_verifier(issuer):
    """Build verifiers against the fake issuer with fast test intervals; close them after."""
    made = []

    def make(**options) -> TokenVerifier:
        options = {
            "revocation_poll_interval": 0.05,
            "max_revocation_staleness": 5.0,
            **options,
        }
        verifier = TokenVerifier(options.pop("issuer", issuer.issuer), options.pop("audience", AUDIENCE), **options)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        verifier.close()


@pytest.fixture
def verifier(make_verifier):
    return make_verifier()


def eventually(predicate, timeout: float = 5.0, step: float = 0.02):
    """Poll ``predicate`` until it returns truthy or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)

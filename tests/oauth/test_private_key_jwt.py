"""``private_key_jwt`` client authentication (RFC 7523 §2.2, §3; OIDC Core §9).

A client registered with its public keys (inline or by ``jwks_uri``) proves
itself with a signed assertion at the token, revocation, introspection and
PAR endpoints. Each rule of RFC 7523 §3 is checked on its own; every bad
assertion is ``invalid_client`` (401), never a 500; a ``jti`` is accepted
once, on any instance sharing the store.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import ECAlgorithm
from jwt.algorithms import OKPAlgorithm
from jwt.algorithms import RSAAlgorithm

from authsvc import accounts
from authsvc.app import create_app
from authsvc.oauth import client_keys
from authsvc.services import build
from tests.conftest import basic_auth
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CC = {"grant_type": "client_credentials"}
ALGS = {"RS256": "rsa", "PS256": "rsa", "ES256": "ec", "EdDSA": "ed"}


@pytest.fixture(scope="session")
def keys():
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ec": ec.generate_private_key(ec.SECP256R1()),
        "ed": ed25519.Ed25519PrivateKey.generate(),
        "other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


def public_jwk(private_key, kid: str) -> dict:
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


def jwks_of(keys, names=("rsa", "ec", "ed")) -> str:
    return json.dumps({"keys": [public_jwk(keys[name], name) for name in names]})


@pytest.fixture
def signer(make_client, keys):
    """A client_credentials client registered for private_key_jwt with an RSA, an EC and an Ed25519 key."""
    record, secret = make_client(
        "signer",
        auth_method="private_key_jwt",
        jwks=jwks_of(keys),
        grant_types=("client_credentials",),
        redirect_uris=(),
        scope="api:read",
    )
    assert secret is None
    return record


def make_assertion(client_id, key, *, alg="RS256", kid="rsa", aud="http://127.0.0.1:8000/token", now=None, **claims):
    now = int(time.time()) if now is None else now
    payload = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 60, "iat": now, "jti": str(uuid.uuid4())}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    headers = {"kid": kid} if kid else {}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def assertion_form(assertion: str, **extra) -> dict:
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **extra}


def post_token(http, assertion, **extra):
    return http.post("/token", data={**CC, **assertion_form(assertion), **extra})


def assert_invalid_client(response):
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.json["error"] == "invalid_client"
    assert response.headers["Cache-Control"] == "no-store"


# -- RFC 7523 §2.2: the assertion authenticates the client -------------------------------


@pytest.mark.parametrize("alg", sorted(ALGS))
def test_rfc7523_s2_2_a_signed_assertion_gets_a_token(client, signer, keys, alg, clock):
    name = ALGS[alg]
    assertion = make_assertion(signer.client_id, keys[name], alg=alg, kid=name, now=int(clock()))
    response = post_token(client, assertion)
    assert response.status_code == 200, response.get_data(as_text=True)
    claims = jwt.decode(response.json["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == signer.client_id


def test_rfc7523_s2_2_kid_may_be_left_out_when_one_key_fits(client, make_client, keys, clock):
    record, _ = make_client(
        "one key", auth_method="private_key_jwt", jwks=jwks_of(keys, ("ec",)), grant_types=("client_credentials",)
    )
    assertion = make_assertion(record.client_id, keys["ec"], alg="ES256", kid=None, now=int(clock()))
    assert post_token(client, assertion).status_code == 200


def test_rfc7523_s2_2_client_id_in_the_body_must_match(client, signer, keys, clock):
    assertion = make_assertion(signer.client_id, keys["rsa"], now=int(clock()))
    assert post_token(client, assertion, client_id=signer.client_id).status_code == 200
    other = make_assertion(signer.client_id, keys["rsa"], now=int(clock()))
    assert_invalid_client(post_token(client, other, client_id="c_someone_else"))


# -- RFC 7523 §3: the claims ---------------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    ["http://127.0.0.1:8000", "http://127.0.0.1:8000/token", ["https://elsewhere.example", "http://127.0.0.1:8000"]],
)
def test_rfc7523_s3_aud_is_the_issuer_or_its_token_endpoint(client, signer, keys, aud, clock):
    assertion = make_assertion(signer.client_id, keys["rsa"], aud=aud, now=int(clock()))
    assert post_token(client, assertion).status_code == 200


@pytest.mark.parametrize(
    "aud",
    [
        None,
        "https://elsewhere.example/token",
        "http://127.0.0.1:8000/token/",
        "http://127.0.0.1:8000/revoke",  # another endpoint's URL, sent to /token
        ["https://elsewhere.example"],
        123,
        [],
    ],
)
def test_rfc7523_s3_another_audience_is_refused(client, signer, keys, aud, clock):
    assertion = make_assertion(signer.client_id, keys["rsa"], aud=aud, now=int(clock()))
    assert_invalid_client(post_token(client, assertion))


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "c_someone_else"},
        {"sub": "c_someone_else"},
        {"iss": None},
        {"sub": None},
        {"sub": 42},
    ],
)
def test_rfc7523_s3_iss_and_sub_are_the_client_id(client, signer, keys, claims, clock):
    assertion = make_assertion(signer.client_id, keys["rsa"], now=int(clock()), **claims)
    assert_invalid_client(post_token(client, assertion))


@pytest.mark.parametrize(
    "exp_offset",
    [None, -120, 3600, 301 + 30],  # missing, expired beyond the skew, far ahead, just past the bound
)
def test_rfc7523_s3_exp_is_required_and_short(client, signer, keys, clock, exp_offset):
    now = int(clock())
    exp = None if exp_offset is None else now + exp_offset
    assertion = make_assertion(signer.client_id, keys["rsa"], now=now, exp=exp)
    assert_invalid_client(post_token(client, assertion))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_rfc7523_s3_nbf_and_iat_in_the_future_are_refused(client, signer, keys, clock, claim):
    now = int(clock())
    assertion = make_assertion(signer.client_id, keys["rsa"], now=now, **{claim: now + 120})
    assert_invalid_client(post_token(client, assertion))


def test_rfc7523_s3_jti_is_required(client, signer, keys, clock):
    assertion = make_assertion(signer.client_id, keys["rsa"], now=int(clock()), jti=None)
    assert_invalid_client(post_token(client, assertion))


def test_rfc7523_s3_a_replayed_assertion_is_refused(client, signer, keys, clock):
    assertion = make_assertion(signer.client_id, keys["rsa"], now=int(clock()))
    assert post_token(client, assertion).status_code == 200
    assert_invalid_client(post_token(client, assertion))


def test_rfc7523_s3_jti_is_single_use_across_instances(settings, clock, keyring, services, signer, keys):  # noqa: F811
    """Two app instances on one store (CVE-2020-5300: Hydra never checked the jti)."""
    other = build(settings, clock=clock, keyring=keyring)
    try:
        first = create_app(services=services).test_client()
        second = create_app(services=other).test_client()
        assertion = make_assertion(signer.client_id, keys["rsa"], now=int(clock()))
        assert post_token(first, assertion).status_code == 200
        assert_invalid_client(post_token(second, assertion))
    finally:
        other.close()


# -- headers and keys ----------------------------------------------------------------------


def test_an_assertion_signed_by_another_key_is_refused(client, signer, keys, clock):
    assertion = make_assertion(signer.client_id, keys["other"], now=int(clock()))
    assert_invalid_client(post_token(client, assertion))


def test_hs256_with_the_registered_public_key_as_secret_is_refused(client, signer, keys, clock):
    """Algorithm confusion: the public key is known to everyone."""
    pem = (
        keys["rsa"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    now = int(clock())
    claims = {
        "iss": signer.client_id,
        "sub": signer.client_id,
        "aud": "http://127.0.0.1:8000",
        "exp": now + 60,
        "jti": "hs",
    }
    header = b64json({"alg": "HS256", "kid": "rsa", "typ": "JWT"})
    signing_input = f"{header}.{b64json(claims)}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert_invalid_client(post_token(client, f"{signing_input}.{b64(signature)}"))


def test_alg_none_is_refused(client, signer, clock):
    now = int(clock())
    claims = {"iss": signer.client_id, "sub": signer.client_id, "aud": "http://127.0.0.1:8000", "exp": now + 60}
    assertion = f"{b64json({'alg': 'none', 'kid': 'rsa'})}.{b64json({**claims, 'jti': 'none'})}."
    assert_invalid_client(post_token(client, assertion))


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u", "x5c", "crit"])
def test_key_bearing_headers_are_refused(client, signer, keys, clock, header):
    """Keys come from the registration only, never from the assertion itself."""
    values = {
        "jwk": public_jwk(keys["rsa"], "rsa"),
        "jku": "https://attacker.example/jwks",
        "x5u": "https://attacker.example/cert",
        "x5c": ["MIIB"],
        "crit": ["exp"],
    }
    now = int(clock())
    payload = {
        "iss": signer.client_id,
        "sub": signer.client_id,
        "aud": "http://127.0.0.1:8000",
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    assertion = jwt.encode(payload, keys["rsa"], algorithm="RS256", headers={"kid": "rsa", header: values[header]})
    assert_invalid_client(post_token(client, assertion))


def test_an_algorithm_that_does_not_fit_the_key_is_refused(client, signer, keys, clock):
    # The EC key's kid with an RSA signature: no registered key fits (kid, alg).
    assertion = make_assertion(signer.client_id, keys["rsa"], alg="RS256", kid="ec", now=int(clock()))
    assert_invalid_client(post_token(client, assertion))


@pytest.mark.parametrize("typ", ["JWT", "client-authentication+jwt", None])
def test_typ_may_be_jwt_or_client_authentication(client, signer, keys, clock, typ):
    now = int(clock())
    payload = {"iss": signer.client_id, "sub": signer.client_id, "aud": "http://127.0.0.1:8000", "exp": now + 60}
    headers = {"kid": "rsa", "typ": typ}
    assertion = jwt.encode({**payload, "jti": str(uuid.uuid4())}, keys["rsa"], algorithm="RS256", headers=headers)
    assert post_token(client, assertion).status_code == 200


def test_another_token_type_is_refused(client, signer, keys, clock):
    now = int(clock())
    payload = {"iss": signer.client_id, "sub": signer.client_id, "aud": "http://127.0.0.1:8000", "exp": now + 60}
    headers = {"kid": "rsa", "typ": "dpop+jwt"}
    assertion = jwt.encode({**payload, "jti": "x"}, keys["rsa"], algorithm="RS256", headers=headers)
    assert_invalid_client(post_token(client, assertion))


# -- the registered method, and one method per request -------------------------------------


def test_a_secret_client_cannot_switch_to_an_assertion(client, make_client, keys, clock):
    record, secret = make_client("secret user", grant_types=("client_credentials",), redirect_uris=())
    assertion = make_assertion(record.client_id, keys["rsa"], now=int(clock()))
    assert_invalid_client(post_token(client, assertion))


def test_a_private_key_jwt_client_has_no_secret_to_use(client, signer):
    response = client.post("/token", data=CC, headers=basic_auth(signer.client_id, "guess"))
    assert_invalid_client(response)
    response = client.post("/token", data={**CC, "client_id": signer.client_id})
    assert_invalid_client(response)


def test_two_methods_at_once_are_refused(client, signer, make_client, keys, clock):
    other, secret = make_client("other", grant_types=("client_credentials",), redirect_uris=())
    assertion = make_assertion(signer.client_id, keys["rsa"], now=int(clock()))
    response = client.post(
        "/token", data={**CC, **assertion_form(assertion)}, headers=basic_auth(other.client_id, secret)
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_request"
    response = post_token(client, assertion, client_secret="anything")
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


# -- malformed input: invalid_client, never a 500 ------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj) -> str:
    return b64(json.dumps(obj).encode())


@pytest.mark.parametrize(
    "assertion",
    [
        "",
        "x",
        "a.b",
        "a.b.c",
        "a.b.c.d.e",
        "....",
        f"{b64(b'not json')}.{b64json({})}.sig",
        f"{b64json([1, 2])}.{b64json({})}.sig",
        f"{b64json({'alg': 'RS256'})}.{b64json([1])}.sig",
        f"{b64json({'alg': 'RS256'})}.{b64(b'not json')}.sig",
        f"{b64json({'alg': 'RS256', 'kid': 'rsa'})}.{b64json({'sub': {'a': 1}})}.sig",
        f"{b64json({'alg': ['RS256']})}.{b64json({'sub': 'c_x', 'iss': 'c_x'})}.sig",
        f"{b64json({'alg': 'RS256', 'kid': 7})}.{b64json({'sub': 'c_x', 'iss': 'c_x'})}.sig",
        f"{b64json({'alg': 'RS256', 'kid': 'rsa'})}.{b64json({'sub': 'c_x', 'iss': 'c_x'})}.%%%",
        "é.ü.ö",
        "A" * 9000,
    ],
)
def test_malformed_assertions_are_invalid_client(client, signer, assertion):
    response = post_token(client, assertion.replace("c_x", signer.client_id))
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    assert response.json["error"] in ("invalid_client", "invalid_request")


@pytest.mark.parametrize(
    "form",
    [
        {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", "client_assertion": "x"},
        {"client_assertion_type": ASSERTION_TYPE},
        {"client_assertion": "a.b.c"},
        {"client_assertion_type": "", "client_assertion": ""},
    ],
)
def test_malformed_assertion_parameters_are_invalid_client(client, form):
    assert_invalid_client(client.post("/token", data={**CC, **form}))


def test_a_wrong_claim_type_in_a_signed_assertion_is_invalid_client(client, signer, keys, clock):
    for claims in ({"exp": "soon"}, {"exp": True}, {"jti": 5}, {"iat": "now"}, {"jti": "j" * 300}):
        assertion = make_assertion(signer.client_id, keys["rsa"], now=int(clock()), **claims)
        assert_invalid_client(post_token(client, assertion))


# -- revocation and introspection ------------------------------------------------------


@pytest.mark.parametrize("path", ["/revoke", "/introspect"])
def test_revocation_and_introspection_accept_private_key_jwt(client, signer, keys, clock, path):
    now = int(clock())
    token = post_token(client, make_assertion(signer.client_id, keys["rsa"], now=now)).json["access_token"]
    # aud may also be the URL of the endpoint being called.
    for aud in ("http://127.0.0.1:8000", "http://127.0.0.1:8000" + path):
        assertion = make_assertion(signer.client_id, keys["ec"], alg="ES256", kid="ec", aud=aud, now=now)
        response = client.post(path, data={"token": token, **assertion_form(assertion)})
        assert response.status_code == 200, response.get_data(as_text=True)
    if path == "/introspect":
        assert response.json["active"] is True
        assert response.json["client_id"] == signer.client_id
    replay = client.post(path, data={"token": token, **assertion_form(assertion)})
    assert_invalid_client(replay)


def test_revocation_with_a_bad_assertion_is_refused(client, signer, keys, clock):
    now = int(clock())
    token = post_token(client, make_assertion(signer.client_id, keys["rsa"], now=now)).json["access_token"]
    forged = make_assertion(signer.client_id, keys["other"], now=now)
    assert_invalid_client(client.post("/revoke", data={"token": token, **assertion_form(forged)}))
    introspected = client.post(
        "/introspect", data={"token": token, **assertion_form(make_assertion(signer.client_id, keys["rsa"], now=now))}
    )
    assert introspected.json["active"] is True


def test_the_authorization_code_exchange_accepts_private_key_jwt(flow, make_client, services, keys, clock):
    from tests.oauth_calls import quick_user

    quick_user(services)
    record, _ = make_client("web signer", auth_method="private_key_jwt", jwks=jwks_of(keys))
    assert flow.login().status_code in (302, 303)
    code, verifier, _ = flow.code(record)
    assertion = make_assertion(record.client_id, keys["ed"], alg="EdDSA", kid="ed", now=int(clock()))
    response = flow.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": record.redirect_uris[0],
            "code_verifier": verifier,
            **assertion_form(assertion),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "id_token" in response.json


# -- jwks_uri: fetched, cached, refetched on an unknown kid --------------------------------


class JwksServer:
    """Serves a JWK Set on 127.0.0.1 and counts the fetches."""

    def __init__(self, doc: dict):
        self.doc = doc
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.fetches += 1
                body = json.dumps(owner.doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Monotonic:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def jwks_server(keys):
    server = JwksServer(json.loads(jwks_of(keys, ("rsa",))))
    yield server
    server.close()


@pytest.fixture
def uri_client(make_client, jwks_server, app):
    record, secret = make_client(
        "uri signer", auth_method="private_key_jwt", jwks_uri=jwks_server.url, grant_types=("client_credentials",)
    )
    assert secret is None
    monotonic = Monotonic()
    app.extensions["authsvc.server"].client_keys = client_keys.ClientKeys(clock=monotonic)
    return record, monotonic


def test_jwks_uri_keys_are_fetched_once_and_cached(client, uri_client, jwks_server, keys, clock):
    record, _ = uri_client
    for _ in range(3):
        assert post_token(client, make_assertion(record.client_id, keys["rsa"], now=int(clock()))).status_code == 200
    assert jwks_server.fetches == 1


def test_jwks_uri_an_unknown_kid_refetches_at_most_once_per_interval(client, uri_client, jwks_server, keys, clock):
    record, monotonic = uri_client
    assert post_token(client, make_assertion(record.client_id, keys["rsa"], now=int(clock()))).status_code == 200
    # The client rotates to its EC key.
    jwks_server.doc = json.loads(jwks_of(keys, ("ec",)))
    rotated = make_assertion(record.client_id, keys["ec"], alg="ES256", kid="ec", now=int(clock()))
    # Within the refetch interval of the first fetch: no new request, so the new kid is unknown.
    assert_invalid_client(post_token(client, rotated))
    assert jwks_server.fetches == 1
    monotonic.now += client_keys.REFETCH_INTERVAL + 1
    rotated = make_assertion(record.client_id, keys["ec"], alg="ES256", kid="ec", now=int(clock()))
    assert post_token(client, rotated).status_code == 200
    assert jwks_server.fetches == 2
    # A stream of made-up kids does not turn into a stream of fetches.
    for n in range(5):
        made_up = make_assertion(record.client_id, keys["ec"], alg="ES256", kid=f"nope-{n}", now=int(clock()))
        assert_invalid_client(post_token(client, made_up))
    assert jwks_server.fetches == 2


def test_jwks_uri_expires_after_the_ttl_and_survives_a_failed_fetch(client, uri_client, jwks_server, keys, clock):
    record, monotonic = uri_client
    assert post_token(client, make_assertion(record.client_id, keys["rsa"], now=int(clock()))).status_code == 200
    jwks_server.close()
    monotonic.now += client_keys.TTL + 1
    # The fetch fails (server gone): the cached keys still work.
    assert post_token(client, make_assertion(record.client_id, keys["rsa"], now=int(clock()))).status_code == 200


def test_jwks_uri_unreachable_with_nothing_cached_is_invalid_client(client, make_client, app, keys, clock):
    record, _ = make_client(
        "gone", auth_method="private_key_jwt", jwks_uri="http://127.0.0.1:9/jwks", grant_types=("client_credentials",)
    )
    assert_invalid_client(post_token(client, make_assertion(record.client_id, keys["rsa"], now=int(clock()))))


def test_the_cache_holds_a_bounded_number_of_uris(monkeypatch):
    monkeypatch.setattr(client_keys, "MAX_ENTRIES", 3)
    fetched = []

    def fetch(uri):
        fetched.append(uri)
        return {"keys": []}

    cache = client_keys.ClientKeys(fetch=fetch, clock=Monotonic())

    class Record:
        jwks = None

        def __init__(self, uri):
            self.jwks_uri = uri

    for n in range(5):
        cache.keys_for(Record(f"https://c{n}.example/jwks"))
    assert len(cache._cache) == 3
    assert list(cache._cache) == [f"https://c{n}.example/jwks" for n in (2, 3, 4)]


@pytest.mark.parametrize("uri", ["http://attacker.example/jwks", "file:///etc/passwd", "ftp://x.example/jwks"])
def test_the_fetcher_refuses_what_registration_refuses(uri):
    with pytest.raises(ValueError):
        client_keys.fetch_jwks(uri)


def test_private_and_encryption_keys_from_a_uri_are_ignored(keys):
    private = RSAAlgorithm.to_jwk(keys["rsa"], as_dict=True)
    enc = {**public_jwk(keys["ec"], "enc"), "use": "enc"}
    oct_key = {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"}
    usable = client_keys.public_signing_keys({"keys": [private, enc, oct_key, public_jwk(keys["ed"], "ed"), "x"]})
    assert [k["kid"] for k in usable] == ["ed"]


def test_every_registrable_algorithm_is_checked():
    assert set(client_keys.ALGORITHMS) == set(accounts.CLIENT_ASSERTION_ALGS)


# -- discovery ---------------------------------------------------------------------------


def test_discovery_lists_private_key_jwt_and_its_algorithms(client):
    doc = client.get("/.well-known/openid-configuration").json
    for endpoint in ("token", "revocation", "introspection"):
        assert "private_key_jwt" in doc[f"{endpoint}_endpoint_auth_methods_supported"]
        algs = doc[f"{endpoint}_endpoint_auth_signing_alg_values_supported"]
        assert "RS256" in algs and "ES256" in algs
        assert not any(alg.startswith("HS") or alg == "none" for alg in algs)


# -- registration (CLI) ----------------------------------------------------------------


def test_cli_registers_a_jwks_file_and_prints_no_secret(cli, tmp_path, keys, client, clock):
    path = tmp_path / "client-jwks.json"
    path.write_text(jwks_of(keys, ("rsa",)))
    code, out, err = cli(
        "clients", "create", "--name", "signer", "--grant-type", "client_credentials",
        "--auth-method", "private_key_jwt", "--jwks-file", str(path), "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == {"client_id"}
    assertion = make_assertion(doc["client_id"], keys["rsa"], now=int(clock()))
    assert post_token(client, assertion).status_code == 200
    code, out, _ = cli("clients", "list", "--json")
    listed = next(c for c in json.loads(out) if c["client_id"] == doc["client_id"])
    assert listed["token_endpoint_auth_method"] == "private_key_jwt"
    assert listed["jwks"]["keys"][0]["kid"] == "rsa"
    code, _, err = cli("clients", "rotate-secret", doc["client_id"])
    assert code != 0 and "private_key_jwt" in err


def test_cli_registers_a_jwks_uri(cli, store):
    code, out, err = cli(
        "clients", "create", "--name", "signer", "--grant-type", "client_credentials",
        "--auth-method", "private_key_jwt", "--jwks-uri", "https://signer.example/jwks.json", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert set(json.loads(out)) == {"client_id"}


@pytest.mark.parametrize(
    "args, message",
    [
        (("--auth-method", "private_key_jwt"), "--jwks-file or --jwks-uri"),
        (("--jwks-uri", "http://signer.example/jwks"), "https only"),
        (("--jwks-uri", "https://a.example/j", "--auth-method", "client_secret_basic"), "private_key_jwt only"),
        (("--jwks-file", "/nonexistent/jwks.json"), "cannot read"),
    ],
)
def test_cli_refuses_bad_key_registrations(cli, store, args, message):
    code, out, err = cli("clients", "create", "--name", "x", "--grant-type", "client_credentials", *args)
    assert code != 0 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not valid JSON"),
        ('{"keys": []}', "non-empty"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "asymmetric"),
        ("private", "private key material"),
        ("small-rsa", "2048"),
    ],
)
def test_cli_refuses_bad_jwks_files(cli, store, tmp_path, keys, content, message):
    if content == "private":
        content = json.dumps({"keys": [RSAAlgorithm.to_jwk(keys["rsa"], as_dict=True)]})
    if content == "small-rsa":
        small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        content = json.dumps({"keys": [public_jwk(small, "s")]})
    path = tmp_path / "jwks.json"
    path.write_text(content)
    code, out, err = cli(
        "clients", "create", "--name", "x", "--grant-type", "client_credentials", "--jwks-file", str(path)
    )
    assert code != 0 and out == ""
    assert message in err, err

"""Tests of authsvc.tokens.TokenMinter: the one signing path and its own decoder.

Access tokens per RFC 9068, ID tokens per OpenID Connect Core 1.0, and the
decoder the issuer uses for userinfo, introspection and ``id_token_hint``,
which must refuse every token it did not sign exactly as it signs them.
"""

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import get_default_algorithms

from authsvc.tokens import TokenMinter
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401

ALGS = ("RS256", "ES256", "EdDSA")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, claims: dict, key=None, alg=None) -> str:
    """Sign ``header``.``claims`` exactly as given (PyJWT would add or check things)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    algorithm = get_default_algorithms()[alg or header["alg"]]
    return signing_input + "." + b64(algorithm.sign(signing_input.encode(), key))


@pytest.fixture
def minter(settings, keyring, clock):  # noqa: F811
    return TokenMinter(settings, keyring, clock)


def minter_for(settings, keyring, clock, alg):  # noqa: F811
    if not any(k.alg == alg and k.status.value == "active" for k in keyring.keys()):
        keyring.rotate(alg)
    return TokenMinter(settings.with_overrides(signing_alg=alg), keyring, clock)


def public_key(keyring, kid):  # noqa: F811
    jwk = next(k for k in keyring.jwks()["keys"] if k["kid"] == kid)
    return jwt.PyJWK(jwk).key


def access_token(minter, **kw):
    kw.setdefault("client_id", "c_client")
    kw.setdefault("sub", "u_alice")
    kw.setdefault("scope", "api:read")
    kw.setdefault("audience", "https://api.example")
    return minter.mint_access_token(**kw)


def id_token(minter, alg="RS256", **kw):
    kw.setdefault("client_id", "c_client")
    kw.setdefault("sub", "u_alice")
    kw.setdefault("auth_time", minter.clock() - 5)
    kw.setdefault("sid", "s_1")
    kw.setdefault("nonce", "n-0S6")
    kw.setdefault("access_token", None)
    kw.setdefault("extra", {})
    return minter.mint_id_token(alg=alg, **kw)


# --- minting -----------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_access_token_follows_rfc_9068(settings, keyring, clock, alg):  # noqa: F811
    minter = minter_for(settings, keyring, clock, alg)
    token, claims = access_token(minter, sid="s_browser")
    header = jwt.get_unverified_header(token)
    active = keyring.active(alg)
    assert header == {"alg": alg, "kid": active.kid, "typ": "at+jwt"}
    verified = jwt.decode(
        token, public_key(keyring, active.kid), algorithms=[alg], audience="https://api.example", issuer=settings.issuer
    )
    assert verified == claims
    now = int(clock())
    assert verified == {
        "iss": settings.issuer,
        "sub": "u_alice",
        "aud": "https://api.example",
        "exp": now + settings.access_token_ttl,
        "iat": now,
        "jti": verified["jti"],
        "client_id": "c_client",
        "scope": "api:read",
        "sid": "s_browser",
    }
    assert isinstance(verified["jti"], str) and len(verified["jti"]) >= 16


def test_sid_only_when_given_and_jti_unique(minter):
    tokens = [access_token(minter)[1] for _ in range(20)]
    assert all("sid" not in claims for claims in tokens)
    assert len({claims["jti"] for claims in tokens}) == 20


def test_a_rotated_ring_signs_with_the_new_active_key(settings, keyring, clock, minter):  # noqa: F811
    old = keyring.active("RS256").kid
    keyring.add("RS256")
    keyring.rotate("RS256")
    new = keyring.active("RS256").kid
    assert new != old
    token, _ = access_token(minter)
    assert jwt.get_unverified_header(token)["kid"] == new


@pytest.mark.parametrize(
    "alg, digest", [("RS256", hashlib.sha256), ("ES256", hashlib.sha256), ("EdDSA", hashlib.sha512)]
)
def test_id_token_claims_and_at_hash(settings, keyring, clock, alg, digest):  # noqa: F811
    minter = minter_for(settings, keyring, clock, alg)
    at, _ = access_token(minter)
    token = id_token(minter, alg, access_token=at, auth_time=clock() - 30, extra={"email": "alice@example.com"})
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["kid"] == keyring.active(alg).kid
    assert header.get("typ") != "at+jwt"
    claims = jwt.decode(
        token, public_key(keyring, header["kid"]), algorithms=[alg], audience="c_client", issuer=settings.issuer
    )
    now = int(clock())
    full = digest(at.encode("ascii")).digest()
    assert claims["at_hash"] == b64(full[: len(full) // 2])
    assert claims == {
        "iss": settings.issuer,
        "sub": "u_alice",
        "aud": "c_client",
        "exp": now + settings.id_token_ttl,
        "iat": now,
        "auth_time": now - 30,
        "sid": "s_1",
        "nonce": "n-0S6",
        "at_hash": claims["at_hash"],
        "email": "alice@example.com",
    }


def test_id_token_without_nonce_or_access_token_has_neither_claim(minter):
    claims = jwt.decode(id_token(minter, nonce=None, sid=None), options={"verify_signature": False})
    assert not {"nonce", "at_hash", "sid"} & set(claims)


def test_extra_claims_cannot_override_the_protocol_claims(minter, settings):
    token = id_token(minter, extra={"iss": "https://evil.example", "sub": "u_admin", "aud": "c_other"})
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["sub"], claims["aud"]) == (settings.issuer, "u_alice", "c_client")


# --- decoding access tokens ----------------------------------------------------


def test_decode_access_token_round_trip(minter):
    token, claims = access_token(minter)
    assert minter.decode_access_token(token) == claims


def test_tokens_signed_by_a_retired_key_still_decode(minter, keyring):  # noqa: F811
    token, claims = access_token(minter)
    keyring.add("RS256")
    keyring.rotate("RS256")
    assert minter.decode_access_token(token) == claims


def good_parts(minter, keyring):  # noqa: F811
    _, claims = access_token(minter)
    key = keyring.active("RS256")
    return {"alg": "RS256", "kid": key.kid, "typ": "at+jwt"}, claims, key


def test_alg_none_is_refused(minter, keyring):  # noqa: F811
    header, claims, _ = good_parts(minter, keyring)
    for alg in ("none", "None", "nOnE"):
        assert minter.decode_access_token(forge(header | {"alg": alg}, claims)) is None


def test_hs256_keyed_with_the_public_key_is_refused(minter, keyring):  # noqa: F811
    header, claims, key = good_parts(minter, keyring)
    public = key.private_key.public_key()
    encodings = [
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        json.dumps(key.public_jwk()).encode(),
        b"",
    ]
    for secret in encodings:
        signing_input = f"{b64(json.dumps(header | {'alg': 'HS256'}).encode())}.{b64(json.dumps(claims).encode())}"
        token = signing_input + "." + b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
        assert minter.decode_access_token(token) is None


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://evil.example/jwks.json"},
        {"x5u": "https://evil.example/cert.pem"},
        {"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"]},
        {"crit": ["foo"], "foo": 1},
        {"crit": []},
        {"b64": False, "crit": ["b64"]},
    ],
    ids=lambda extra: "+".join(extra),
)
def test_headers_we_never_set_are_refused_even_when_the_signature_is_ours(minter, keyring, extra):  # noqa: F811
    header, claims, key = good_parts(minter, keyring)
    token = forge(header | extra, claims, key.private_key)
    assert minter.decode_access_token(token) is None


def test_an_attacker_key_carried_in_the_jwk_header_is_not_used(minter, keyring):  # noqa: F811
    header, claims, _ = good_parts(minter, keyring)
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    assert minter.decode_access_token(forge(header | {"jwk": jwk}, claims, attacker)) is None
    # Even under the issuer's own kid, another key's signature is refused.
    assert minter.decode_access_token(forge(header, claims, attacker)) is None


def test_an_id_token_is_not_an_access_token(minter, keyring):  # noqa: F811
    assert minter.decode_access_token(id_token(minter)) is None
    header, claims, key = good_parts(minter, keyring)
    for typ in ("JWT", "jwt", "application/jwt", None):
        forged = header | {"typ": typ} if typ else {k: v for k, v in header.items() if k != "typ"}
        assert minter.decode_access_token(forge(forged, claims, key.private_key)) is None


def test_wrong_issuer_is_refused(minter, keyring, settings):  # noqa: F811
    header, claims, key = good_parts(minter, keyring)
    for iss in ("https://evil.example", settings.issuer + "/", settings.issuer + ".evil", "http", None):
        forged = claims | {"iss": iss} if iss else {k: v for k, v in claims.items() if k != "iss"}
        assert minter.decode_access_token(forge(header, forged, key.private_key)) is None


def test_missing_protocol_claims_are_refused(minter, keyring):  # noqa: F811
    header, claims, key = good_parts(minter, keyring)
    for name in ("jti", "client_id", "sub", "exp", "iat", "aud"):
        forged = {k: v for k, v in claims.items() if k != name}
        assert minter.decode_access_token(forge(header, forged, key.private_key)) is None, name
    for wrong in ({"jti": 5}, {"client_id": None}, {"exp": str(claims["exp"])}, {"exp": True}, {"iat": "now"}):
        assert minter.decode_access_token(forge(header, claims | wrong, key.private_key)) is None, wrong


def test_tampering_unknown_kids_and_garbage_are_refused(minter, keyring):  # noqa: F811
    token, _ = access_token(minter)
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered = b64(json.dumps(claims | {"scope": "admin"}).encode())
    header, good_claims, key = good_parts(minter, keyring)
    for bad in [
        f"{head}.{tampered}.{signature}",
        f"{head}.{payload}.",
        f"{head}.{payload}",
        f"{head}.{payload}.{signature}.{signature}",
        forge(header | {"kid": "../../keys/x.pem"}, good_claims, key.private_key),
        forge(header | {"kid": 7}, good_claims, key.private_key),
        forge(header | {"alg": "ES256"}, good_claims),
        "a" * 100_000,
        "",
        "...",
        "not a jwt",
        None,
        42,
    ]:
        assert minter.decode_access_token(bad) is None


def test_expired_access_tokens_are_refused(minter, clock, settings):
    token, claims = access_token(minter)
    clock.advance(settings.access_token_ttl + settings.leeway - 1)
    assert minter.decode_access_token(token) == claims
    clock.advance(2)
    assert minter.decode_access_token(token) is None


def test_a_token_from_the_issuer_clock_future_is_accepted_by_the_issuer(minter, clock):
    """Decoding follows the injected clock, not the machine's: a token minted 'later' is fresh then."""
    clock.advance(3600)
    token, claims = access_token(minter)
    assert minter.decode_access_token(token) == claims


def test_a_token_issued_in_the_future_is_refused(minter, clock, settings):
    clock.advance(settings.leeway + 10)
    token, _ = access_token(minter)
    clock.advance(-(settings.leeway + 10))
    assert minter.decode_access_token(token) is None


# --- id_token_hint ----------------------------------------------------------------


def test_an_expired_genuine_hint_is_accepted(minter, clock, settings):
    token = id_token(minter)
    clock.advance(settings.id_token_ttl + 86400)
    claims = minter.decode_id_token_hint(token)
    assert claims["sub"] == "u_alice" and claims["sid"] == "s_1"
    assert minter.decode_id_token_hint(token, client_id="c_client")["aud"] == "c_client"
    assert minter.decode_id_token_hint(token, client_id="c_other") is None


def test_a_hint_must_be_a_genuine_id_token(minter, keyring):  # noqa: F811
    at, _ = access_token(minter)
    assert minter.decode_id_token_hint(at) is None
    token = id_token(minter)
    head, payload, _ = token.split(".")
    header = jwt.get_unverified_header(token)
    assert minter.decode_id_token_hint(f"{head}.{payload}.") is None
    assert (
        minter.decode_id_token_hint(
            forge(header | {"alg": "none"}, json.loads(base64.urlsafe_b64decode(payload + "==")))
        )
        is None
    )
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert minter.decode_id_token_hint(forge(header, claims, attacker)) is None

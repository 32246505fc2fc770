"""SECURITY.md section A: the JWS attacks (alg, keys, kid, embedded keys, crit, signatures).

Each hostile token is signed with the issuer's real key wherever that makes the attack
stronger, so a rejection proves the rule and not merely a bad signature.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import socket
import time
import uuid

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from authsvc.verify import InvalidSignature
from authsvc.verify import InvalidToken
from authsvc.verify import MalformedToken
from authsvc.verify import UnknownKey

from .conftest import KIDS
from .conftest import b64
from .conftest import b64json
from .conftest import jws_header as header

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def with_signature(token: str, signature: bytes | str) -> str:
    head, payload, _ = token.split(".")
    sig = signature if isinstance(signature, str) else b64(signature)
    return f"{head}.{payload}.{sig}"


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_well_formed_tokens_verify(issuer, verifier, alg):
    claims = issuer.claims()
    token = jwt.encode(claims, issuer.private_keys[alg], algorithm=alg, headers=header(alg))
    assert verifier.verify(token) == claims


@pytest.mark.parametrize("alg", ["none", "None", "nOnE", "NONE"])
@pytest.mark.parametrize("tail", [".", "", ".AAAA"])
def test_alg_none_is_rejected(issuer, verifier, alg, tail):
    token = f"{b64json(header(alg, kid=KIDS['RS256']))}.{b64json(issuer.claims())}{tail}"
    with pytest.raises(MalformedToken):
        verifier.verify(token)


def public_key_encodings(key) -> dict[str, bytes]:
    """Every way the public half of ``key`` might be handed to an HMAC by a confused verifier."""
    public = key.public_key()
    spki = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    encodings = {
        "pem-spki": spki,
        "der": public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        "openssh": public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH),
        "pem-spki-str-stripped": spki.strip(),
        "empty": b"",
    }
    if isinstance(public, rsa.RSAPublicKey):
        encodings["pkcs1"] = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    encodings["x509-pem"] = self_signed_certificate(key).public_bytes(serialization.Encoding.PEM)
    return encodings


def self_signed_certificate(key) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    digest = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, digest)


@pytest.mark.parametrize("hs_alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize("key_alg", ["RS256", "ES256", "EdDSA"])
def test_hmac_keyed_with_the_public_key_is_rejected(issuer, verifier, hs_alg, key_alg):
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[hs_alg]
    secrets = public_key_encodings(issuer.private_keys[key_alg])
    secrets["jwk-json"] = json.dumps(issuer.public_jwk(key_alg)).encode()
    for name, secret in secrets.items():
        signing_input = f"{b64json(header(hs_alg, kid=KIDS[key_alg]))}.{b64json(issuer.claims())}"
        mac = hmac.new(secret, signing_input.encode(), digest).digest()
        with pytest.raises(MalformedToken):
            verifier.verify(f"{signing_input}.{b64(mac)}")
        assert name  # every encoding was tried


@pytest.mark.parametrize(
    ("header_alg", "kid_alg", "signing_alg"),
    [
        ("RS256", "ES256", "RS256"),  # RS256 header pointing at the EC key
        ("ES256", "RS256", "ES256"),
        ("EdDSA", "ES256", "EdDSA"),
        ("RS256", "EdDSA", "RS256"),
    ],
)
def test_algorithm_is_bound_to_the_kid(issuer, verifier, header_alg, kid_alg, signing_alg):
    token = issuer.sign_raw(header(header_alg, kid=KIDS[kid_alg]), issuer.claims(), alg=signing_alg)
    with pytest.raises(InvalidSignature):
        verifier.verify(token)


@pytest.mark.parametrize(
    "alg", ["PS256", "RS384", "ES384", "ES512", "ES256K", "Ed25519", "rs256", "HS256", ["RS256"], {"RS256": 1}, None]
)
def test_algorithms_outside_the_allowlist_are_rejected(issuer, verifier, alg):
    token = issuer.sign_raw({**header("RS256"), "alg": alg}, issuer.claims())
    with pytest.raises(MalformedToken):
        verifier.verify(token)


def test_es256_signature_from_a_p384_key_is_rejected(issuer, verifier):
    signing_input = f"{b64json(header('ES256'))}.{b64json(issuer.claims())}"
    other = ec.generate_private_key(ec.SECP384R1())
    signature = jwt.get_algorithm_by_name("ES384").sign(signing_input.encode(), other)
    with pytest.raises(InvalidSignature):
        verifier.verify(f"{signing_input}.{b64(signature)}")


@pytest.mark.parametrize(
    "kid",
    [
        "../../keys/x.pem",
        "/dev/null",
        "' OR '1'='1",
        "rs-1\x00",
        "\x00",
        "x" * 10_000,
        "k" * 300,
        "",
        123,
        None,
        ["rs-1"],
        {"kid": "rs-1"},
        True,
    ],
)
def test_kid_abuse_is_an_unknown_or_malformed_token(issuer, verifier, kid):
    verifier.verify(issuer.mint())  # warm: the JWKS is loaded
    fetched = issuer.counts["jwks"]
    token = issuer.sign_raw(header(kid=kid), issuer.claims())
    with pytest.raises((UnknownKey, MalformedToken)):
        verifier.verify(token)
    assert issuer.counts["jwks"] <= fetched + 1
    assert issuer.counts["other"] == 0  # no path was ever built from the kid


def test_missing_kid_is_malformed(issuer, verifier):
    hdr = header()
    del hdr["kid"]
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.sign_raw(hdr, issuer.claims()))


def test_random_kid_flood_costs_at_most_one_jwks_fetch(issuer, verifier):
    good = issuer.mint()
    verifier.verify(good)
    fetched = issuer.counts["jwks"]
    started = time.monotonic()
    for _ in range(1000):
        token = issuer.sign_raw(header(kid=uuid.uuid4().hex), issuer.claims())
        with pytest.raises(UnknownKey):
            verifier.verify(token)
    assert issuer.counts["jwks"] <= fetched + 1
    assert time.monotonic() - started < 10
    started = time.monotonic()
    verifier.verify(good)
    assert time.monotonic() - started < 0.05


@pytest.fixture
def listener():
    """A socket that would see the connection if a verifier fetched a URL from a token."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/keys"
    try:
        sock.accept()
        connected = True
    except BlockingIOError:
        connected = False
    sock.close()
    assert not connected, "the verifier connected to a URL taken from the token"


@pytest.mark.parametrize("name", ["jku", "x5u"])
def test_remote_key_urls_are_rejected_without_fetching(issuer, verifier, listener, name):
    token = issuer.sign_raw(header(**{name: listener}), issuer.claims())
    with pytest.raises(MalformedToken):
        verifier.verify(token)
    time.sleep(0.05)  # give a stray fetch the chance to reach the listener


def test_embedded_keys_are_rejected(issuer, verifier):
    attacker = ec.generate_private_key(ec.SECP256R1())
    attacker_jwk = json.loads(jwt.get_algorithm_by_name("ES256").to_jwk(attacker.public_key()))
    der = (
        issuer.private_keys["RS256"]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for extra in ({"jwk": attacker_jwk}, {"x5c": [b64(der)]}, {"jwk": issuer.public_jwk("ES256")}):
        # Signed by the attacker's own key, as an embedded-key attack would be.
        signing_input = f"{b64json(header('ES256', **extra))}.{b64json(issuer.claims())}"
        signature = jwt.get_algorithm_by_name("ES256").sign(signing_input.encode(), attacker)
        with pytest.raises(MalformedToken):
            verifier.verify(f"{signing_input}.{b64(signature)}")


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["foo"], "foo": 1},
        {"crit": ["exp"]},
        {"crit": []},
        {"crit": "b64"},
        {"crit": [1]},
        {"crit": ["b64"], "b64": True},
        {"b64": True},
        {"b64": False, "crit": ["b64"]},
        {"zip": "DEF"},
        {"enc": "A256GCM"},
    ],
)
def test_crit_and_b64_are_refused(issuer, verifier, extra):
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.sign_raw(header(**extra), issuer.claims()))


def test_tampered_payload_is_rejected(issuer, verifier):
    token = issuer.mint(scope="read")
    head, payload, sig = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["scope"] = "read admin"
    with pytest.raises(InvalidSignature):
        verifier.verify(f"{head}.{b64json(claims)}.{sig}")
    # One flipped bit anywhere in the payload bytes.
    raw = bytearray(jwt.utils.base64url_decode(payload))
    raw[len(raw) // 2] ^= 0x01
    with pytest.raises(InvalidToken):
        verifier.verify(f"{head}.{b64(bytes(raw))}.{sig}")


def test_stripped_truncated_and_swapped_signatures(issuer, verifier):
    token = issuer.mint()
    other = issuer.mint()
    head, payload, sig = token.split(".")
    raw_sig = jwt.utils.base64url_decode(sig)
    for bad in (
        f"{head}.{payload}.",
        f"{head}.{payload}",
        f"{head}.{payload}.{b64(raw_sig[:-1])}",
        f"{head}.{payload}.{b64(raw_sig[:128])}",
        f"{head}.{payload}.{other.split('.')[2]}",
        f"{head}.{payload}.{b64(raw_sig + b'x')}",
    ):
        with pytest.raises(InvalidToken):
            verifier.verify(bad)


@pytest.mark.parametrize(
    "signature",
    [
        bytes(64),  # r = s = 0, CVE-2022-21449
        P256_ORDER.to_bytes(32, "big") * 2,  # r = s = n
        bytes(63),
        bytes(65),
        b"\x01" * 63,
        b"\x01" * 65,
    ],
)
def test_psychic_ecdsa_signatures_are_rejected(issuer, verifier, signature):
    with pytest.raises(InvalidSignature):
        verifier.verify(with_signature(issuer.mint("ES256"), signature))


def test_der_encoded_ecdsa_signature_is_rejected(issuer, verifier):
    token = issuer.mint("ES256")
    raw = jwt.utils.base64url_decode(token.split(".")[2])
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    with pytest.raises(InvalidSignature):
        verifier.verify(with_signature(token, der))

"""SECURITY.md section A: every JWT attack, thrown at TokenVerifier.verify.

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
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from authsvc.verify import ExpiredToken
from authsvc.verify import InsufficientScope
from authsvc.verify import InvalidAudience
from authsvc.verify import InvalidClaim
from authsvc.verify import InvalidIssuer
from authsvc.verify import InvalidSignature
from authsvc.verify import InvalidToken
from authsvc.verify import MalformedToken
from authsvc.verify import TokenVerifier
from authsvc.verify import UnknownKey

from .conftest import AUDIENCE
from .conftest import DROP
from .conftest import KIDS
from .conftest import b64
from .conftest import b64json

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def header(alg: str = "RS256", **extra) -> dict:
    return {"alg": alg, "kid": KIDS.get(alg, KIDS["RS256"]), "typ": "at+jwt", **extra}


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


@pytest.mark.parametrize("alg", ["PS256", "RS384", "ES384", "ES512", "ES256K", "Ed25519", "rs256", "HS256"])
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


def test_non_canonical_base64url_is_rejected(issuer, verifier):
    token = issuer.mint()
    head, payload, sig = token.split(".")
    padded = [f"{head}==.{payload}.{sig}", f"{head}.{payload}=.{sig}", f"{head}.{payload}.{sig}="]
    # A last character whose unused low bits are set decodes to the same bytes.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    bits = len(sig) * 6 % 8
    if bits:
        tweaked = last[last.index(sig[-1]) | ((1 << bits) - 1)]
        padded.append(f"{head}.{payload}.{sig[:-1]}{tweaked}")
    for bad in padded:
        with pytest.raises(MalformedToken):
            verifier.verify(bad)
    with pytest.raises(MalformedToken):
        verifier.verify(f"{token}.{sig}")  # four segments
    with pytest.raises(MalformedToken):
        verifier.verify(f"{head}.{payload}.{sig}.")


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


def test_expiry(issuer, verifier):
    now = int(time.time())
    with pytest.raises(ExpiredToken):
        verifier.verify(issuer.mint(iat=now - 900, exp=now - 300))
    with pytest.raises(InvalidClaim):
        verifier.verify(issuer.mint(exp=DROP))


def test_not_yet_valid(issuer, verifier):
    now = int(time.time())
    with pytest.raises(InvalidClaim):
        verifier.verify(issuer.mint(nbf=now + 300))
    with pytest.raises(InvalidClaim):
        verifier.verify(issuer.mint(iat=now + 300, exp=now + 900))


@pytest.mark.parametrize(
    "raw_exp",
    [b'"9999999999"', b"true", b"-1", b"1e309", b"-1e309", b"NaN", b"Infinity", b"[9999999999]", b"null", b"{}"],
)
def test_exp_of_the_wrong_type_is_rejected(issuer, verifier, raw_exp):
    claims = json.dumps(issuer.claims(exp=DROP)).encode()
    payload = claims[:-1] + b', "exp": ' + raw_exp + b"}"
    with pytest.raises(InvalidToken):
        verifier.verify(issuer.sign_raw(header(), payload))


def test_fractional_numeric_dates_are_accepted(issuer, verifier):
    now = time.time()
    verifier.verify(issuer.mint(iat=now, exp=now + 600.5))


@pytest.mark.parametrize(
    "iss",
    ["{issuer}.evil", "{issuer}/", "http", "{issuer_upper}", "", ["{issuer}"], None, DROP, " {issuer}"],
)
def test_issuer_must_match_exactly(issuer, verifier, iss):
    if isinstance(iss, str):
        iss = iss.format(issuer=issuer.issuer, issuer_upper=issuer.issuer.upper())
    elif isinstance(iss, list):
        iss = [issuer.issuer]
    with pytest.raises(InvalidIssuer):
        verifier.verify(issuer.mint(iss=iss))


@pytest.mark.parametrize(
    "aud",
    [
        DROP,
        "",
        [],
        ["https://other.test"],
        "https://other.test",
        AUDIENCE + "/",
        AUDIENCE[:-1],
        42,
        [AUDIENCE, 42],
        None,
    ],
)
def test_audience_must_name_us(issuer, verifier, aud):
    with pytest.raises(InvalidAudience):
        verifier.verify(issuer.mint(aud=aud))


def test_audience_list_containing_us_is_accepted(issuer, verifier):
    verifier.verify(issuer.mint(aud=["https://other.test", AUDIENCE]))


@pytest.mark.parametrize("typ", ["JWT", DROP, None, "jwt", "id+jwt", "at+jwt; x=1", "application/jwt", "", 1])
def test_only_access_token_types_are_accepted(issuer, verifier, typ):
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.mint(headers={"typ": typ}))


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt"])
def test_access_token_types_compare_case_insensitively(issuer, verifier, typ):
    verifier.verify(issuer.mint(headers={"typ": typ}))


def test_id_token_presented_as_access_token(issuer, verifier):
    id_token = jwt.encode(
        {**issuer.claims(), "aud": AUDIENCE, "nonce": "n"},
        issuer.private_keys["RS256"],
        algorithm="RS256",
        headers={"kid": KIDS["RS256"]},  # PyJWT's default typ "JWT", as an ID token has
    )
    with pytest.raises(MalformedToken):
        verifier.verify(id_token)


def test_other_serializations_are_rejected_before_crypto(issuer, verifier):
    token = issuer.mint()
    head, payload, sig = token.split(".")
    for bad in (
        f"{head}.{b64(b'key')}.{b64(b'iv')}.{payload}.{sig}",  # JWE compact, 5 segments
        json.dumps({"payload": payload, "protected": head, "signature": sig}),
        json.dumps({"payload": payload, "signatures": [{"protected": head, "signature": sig}]}),
        f'{head}.{payload}.{sig}{{"payload":"x"}}',
        f" {token}",
        f"{token}\n",
        f"{head}. {payload}.{sig}",
        f'"{token}"',
        token.replace("-", "+"),
        "",
        "..",
    ):
        with pytest.raises(MalformedToken):
            verifier.verify(bad)
    for not_a_string in (None, 42, ["a.b.c"], b"\xff.\xff.\xff"):
        with pytest.raises(MalformedToken):
            verifier.verify(not_a_string)


@pytest.mark.parametrize("size", [8193, 64 * 1024, 100 * 1024, 1024 * 1024])
def test_oversized_tokens_are_rejected_fast(issuer, verifier, size):
    token = issuer.mint()
    head, _, sig = token.split(".")
    big = f"{head}.{'A' * size}.{sig}"
    started = time.perf_counter()
    with pytest.raises(MalformedToken):
        verifier.verify(big)
    assert time.perf_counter() - started < 0.05


def test_max_token_bytes_is_configurable(issuer, make_verifier):
    token = issuer.mint()
    with pytest.raises(MalformedToken):
        make_verifier(max_token_bytes=len(token) - 1).verify(token)
    assert make_verifier(max_token_bytes=len(token)).verify(token)


def test_deeply_nested_json_is_rejected(issuer, verifier):
    nested = b'{"alg":"RS256","kid":"rs-1","typ":"at+jwt","x":' + b"[" * 2500 + b"]" * 2500 + b"}"
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.sign_raw(nested, issuer.claims()))


def test_duplicate_members_are_rejected_even_when_signed(issuer, verifier):
    claims = issuer.claims(sub="alice")
    payload = json.dumps(claims).encode()[:-1] + b', "sub": "admin"}'
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.sign_raw(header(), payload))
    head = b'{"alg":"HS256","kid":"rs-1","typ":"at+jwt","alg":"RS256"}'
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.sign_raw(head, claims))


@pytest.mark.parametrize(
    "payload",
    [
        "UTF16",
        b"\xef\xbb\xbf{}",
        b'{"sub": "\xff"}',
        b'{"sub": "\\ud800"}',
        b'{"sub": "\xed\xa0\x80"}',  # a surrogate encoded as if UTF-8 (CESU-8)
    ],
)
def test_only_utf8_json_is_accepted(issuer, verifier, payload):
    if payload == "UTF16":
        payload = json.dumps(issuer.claims()).encode("utf-16")
    elif payload.endswith(b"}") and payload != b"\xef\xbb\xbf{}":
        claims = json.dumps(issuer.claims(sub=DROP)).encode()
        payload = claims[:-1] + b", " + payload[1:]
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.sign_raw(header(), payload))


@pytest.mark.parametrize(
    "overrides",
    [
        {"jti": DROP},
        {"client_id": DROP},
        {"iat": DROP},
        {"sub": DROP},
        {"scope": DROP},
        {"sub": 123},
        {"jti": ""},
        {"jti": 7},
        {"client_id": ["c"]},
        {"scope": ["read", "write"]},
        {"scope": None},
        {"sid": 5},
        {"iat": "now"},
    ],
)
def test_rfc9068_claim_types(issuer, verifier, overrides):
    with pytest.raises(InvalidClaim):
        verifier.verify(issuer.mint(**overrides))


def test_required_scopes_are_enforced(issuer, verifier):
    token = issuer.mint(scope="read write")
    assert verifier.verify(token, scopes=["read"])
    assert verifier.verify(token, scopes="read write")
    with pytest.raises(InsufficientScope) as info:
        verifier.verify(token, scopes=["read", "admin"])
    assert info.value.scopes == ("read", "admin")
    assert info.value.status_code == 403 and info.value.error == "insufficient_scope"
    # "re" is a substring of "read" but not a granted scope.
    with pytest.raises(InsufficientScope):
        verifier.verify(token, scopes="re")
    with pytest.raises(InsufficientScope):
        verifier.verify(issuer.mint(scope=""), scopes="read")


@pytest.mark.parametrize("skew", [-30, 30])
def test_clock_skew_within_leeway_is_accepted(issuer, verifier, skew):
    # The issuer's clock runs ``skew`` seconds off ours; it stamps iat/nbf/exp with it.
    # Behind by 30 s: a token stamped to expire "now" on its clock is still inside the leeway.
    now = int(time.time()) + skew
    exp = now + 600 if skew > 0 else now + 1
    verifier.verify(issuer.mint(iat=now, nbf=now, exp=exp))


@pytest.mark.parametrize("skew", [-300, 300])
def test_clock_skew_of_minutes_is_rejected(issuer, verifier, skew):
    now = int(time.time()) + skew
    exp = now + 600 if skew > 0 else now + 1
    with pytest.raises((InvalidClaim, ExpiredToken)):
        verifier.verify(issuer.mint(iat=now, nbf=now, exp=exp))


@pytest.mark.parametrize("leeway", [-1, 61, 300])
def test_leeway_is_bounded(issuer, leeway):
    with pytest.raises(ValueError):
        TokenVerifier(issuer.issuer, AUDIENCE, leeway=leeway, start=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_tokens_only_ever_raise_invalid_token(issuer, verifier, data):
    token = issuer.mint()
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.text(max_size=3))
    mutated = token[:position] + replacement + token[position + 1 :]
    if mutated == token:
        return
    with pytest.raises(InvalidToken):
        verifier.verify(mutated)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_garbage_only_ever_raises_malformed_token(verifier, garbage):
    with pytest.raises(MalformedToken):
        verifier.verify(garbage)

"""Generate and load signing keys, name them by RFC 7638 thumbprint, export public JWKs.

One key serves exactly one JWS algorithm: RS256 (RSA), ES256 (P-256) or EdDSA
(Ed25519). Binding the algorithm to the key here is what lets verifiers refuse
an ``alg`` header that does not belong to the ``kid`` (RFC 8725 §3.1).
"""

import base64
import hashlib
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa

from ..errors import KeyRingError

ALGORITHMS = ("RS256", "ES256", "EdDSA")
_PROBE = b"authsvc key-ring load check"
MIN_RSA_BITS = 2048
# A SHA-256 digest in unpadded base64url is always 43 characters; checking the
# shape (with fullmatch) before a kid becomes part of a file name rules out
# path traversal.
KID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")

# https://www.rfc-editor.org/rfc/rfc7638#section-3.2 (required members per kty)
_REQUIRED_MEMBERS = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}


def check_alg(alg):
    """Raise KeyRingError unless ``alg`` is one the ring can hold."""
    if alg not in ALGORITHMS:
        raise KeyRingError(f"unknown key algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}")


def generate(alg, bits=MIN_RSA_BITS):
    """Return a new private key for ``alg`` (``bits`` applies to RS256 only)."""
    check_alg(alg)
    if alg == "RS256":
        if not isinstance(bits, int) or bits < MIN_RSA_BITS:
            raise KeyRingError(f"RSA keys need at least {MIN_RSA_BITS} bits, not {bits}")
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def check_key_matches_alg(private_key, alg, where):
    """Raise KeyRingError (naming ``where``) unless ``private_key`` is a valid key for ``alg``."""
    check_alg(alg)
    if alg == "RS256":
        ok = isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size >= MIN_RSA_BITS
    elif alg == "ES256":
        ok = isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(private_key.curve, ec.SECP256R1)
    else:
        ok = isinstance(private_key, ed25519.Ed25519PrivateKey)
    if not ok:
        raise KeyRingError(f"{where}: key type does not match algorithm {alg}")


def dump_pem(private_key):
    """Serialise ``private_key`` as unencrypted PKCS#8 PEM bytes."""
    return private_key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def load_private_key(data, where):
    """Parse PEM ``data`` into a private key; KeyRingError naming ``where`` if it is not one."""
    try:
        # OpenSSL's RSA consistency check costs ~0.2 s of CPU with the GIL held, which
        # would stall every request thread of a worker during a reload. A test signature,
        # verified with the public half, proves the same for our purpose in ~1 ms.
        private_key = serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The parser's message is dropped on purpose: it may quote the input.
        raise KeyRingError(f"{where}: not an unencrypted PEM private key") from None
    if isinstance(private_key, rsa.RSAPrivateKey):
        try:
            signature = private_key.sign(_PROBE, padding.PKCS1v15(), hashes.SHA256())
            private_key.public_key().verify(signature, _PROBE, padding.PKCS1v15(), hashes.SHA256())
        except (InvalidSignature, ValueError):
            raise KeyRingError(f"{where}: inconsistent RSA private key") from None
    return private_key


def _b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _uint(value):
    # RFC 7518 §6.3.1.1: big-endian, minimal length (at least one octet).
    return _b64url(value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def public_members(public_key):
    """Return the JWK members that describe ``public_key``: kty plus n,e | crv,x,y | crv,x."""
    if isinstance(public_key, rsa.RSAPublicKey):
        numbers = public_key.public_numbers()
        return {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        # RFC 7518 §6.2.1.2: coordinates are the full field size, leading zeros kept.
        size = (public_key.curve.key_size + 7) // 8
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(size, "big")),
            "y": _b64url(numbers.y.to_bytes(size, "big")),
        }
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}
    raise KeyRingError(f"unsupported public key type {type(public_key).__name__}")


def thumbprint(jwk):
    """Return the RFC 7638 SHA-256 thumbprint of ``jwk`` (base64url, no padding).

    https://www.rfc-editor.org/rfc/rfc7638#section-3
    """
    members = {name: jwk[name] for name in _REQUIRED_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def kid_of(private_key):
    """Return the kid of ``private_key``: the thumbprint of its public half."""
    return thumbprint(public_members(private_key.public_key()))


def public_jwk(private_key, kid, alg):
    """Return the public JWK of ``private_key`` with kid, alg and use=sig; never private members."""
    members = public_members(private_key.public_key())
    return {"kty": members["kty"], "kid": kid, "alg": alg, "use": "sig", **members}


_KTY = {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}
_CURVE = {"ES256": "P-256", "EdDSA": "Ed25519"}


def check_public_jwk(jwk, kid, alg, where):
    """Return ``jwk`` if it is the public JWK of ``kid`` for ``alg``; KeyRingError naming ``where`` otherwise.

    The thumbprint check ties the stored public members to the kid, so a ring can
    publish and verify with them without ever parsing the private key.
    """
    members = set(_REQUIRED_MEMBERS.get(jwk.get("kty"), ())) if isinstance(jwk, dict) else set()
    if (
        not members
        or set(jwk) != members | {"kid", "alg", "use"}
        or jwk.get("kid") != kid
        or jwk.get("alg") != alg
        or jwk.get("use") != "sig"
        or jwk["kty"] != _KTY[alg]
        or jwk.get("crv", _CURVE.get(alg)) != _CURVE.get(alg)
        or not all(isinstance(jwk[name], str) for name in members)
        or thumbprint(jwk) != kid
    ):
        raise KeyRingError(f"{where}: key {kid}: public JWK does not match its kid and alg")
    return jwk


def public_key_from_jwk(jwk):
    """Return the cryptography public key of a checked public JWK (no private parsing)."""
    if jwk["kty"] == "RSA":
        return rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"])).public_key()
    if jwk["kty"] == "EC":
        return ec.EllipticCurvePublicNumbers(_int(jwk["x"]), _int(jwk["y"]), ec.SECP256R1()).public_key()
    return ed25519.Ed25519PublicKey.from_public_bytes(_raw(jwk["x"]))


def _raw(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(text):
    return int.from_bytes(_raw(text), "big")

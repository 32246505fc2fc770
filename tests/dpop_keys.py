"""A DPoP client's key pair, making proofs (RFC 9449 §4.2) the way a client library does.

Built on PyJWT and cryptography only, so the issuer's tests and the verifier's use it
alike. ``proof(..., header=..., claims=...)`` overrides or (with ``DROP``) removes any
member, for the tests of proofs that must be refused.
"""

import base64
import hashlib
import json
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa

DROP = object()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath(access_token: str) -> str:
    """§4.2: base64url of the SHA-256 of the access token's ASCII bytes."""
    return b64(hashlib.sha256(access_token.encode("ascii")).digest())


def _generate(alg: str, rsa_bits: int):
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


class DPoPKey:
    def __init__(self, alg: str = "ES256", *, rsa_bits: int = 2048, clock=time.time):
        self.alg = alg
        self.private_key = _generate(alg, rsa_bits)
        self.clock = clock
        self.public_jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(self.private_key.public_key()))
        self.private_jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(self.private_key))

    @property
    def jkt(self) -> str:
        """RFC 7638 thumbprint, computed here independently of the code under test."""
        required = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
        members = {name: self.public_jwk[name] for name in required[self.public_jwk["kty"]]}
        return b64(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())

    def proof(
        self,
        htm: str,
        htu: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        header: dict | None = None,
        claims: dict | None = None,
        signing_key=None,
        alg: str | None = None,
    ) -> str:
        head = {"typ": "dpop+jwt", "alg": alg or self.alg, "jwk": self.public_jwk, **(header or {})}
        body = {"jti": uuid.uuid4().hex, "htm": htm, "htu": htu, "iat": int(self.clock())}
        if access_token is not None:
            body["ath"] = ath(access_token)
        if nonce is not None:
            body["nonce"] = nonce
        body.update(claims or {})
        head = {k: v for k, v in head.items() if v is not DROP}
        body = {k: v for k, v in body.items() if v is not DROP}
        algorithm = jwt.get_algorithm_by_name(alg or self.alg)
        signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(body).encode())}"
        signature = algorithm.sign(signing_input.encode(), signing_key or self.private_key)
        return f"{signing_input}.{b64(signature)}"

"""DPoP-bound access tokens at the resource server (RFC 9449 §4.3, §6, §7).

A token whose ``cnf.jkt`` names a key is good only together with a proof signed by that
key, made for this very request (``htm``, ``htu``), recently (``iat``), for this token
(``ath``), and seen once (``jti``). A bound token presented as a plain Bearer token is
refused (§7.2); so is a token without ``cnf.jkt`` presented with a proof, and one whose
``cnf`` names a key of a kind this verifier cannot check.

Replays are caught by a cache in this process, bounded in size: a resource server
running several processes catches a replay to the same process only (§11.1 allows
that; server nonces, §9, would close the gap and are not offered here).

Only the standard library, PyJWT and cryptography are used, as in the rest of the package.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ._canonical import THUMBPRINT_MEMBERS
from ._canonical import access_token_hash
from ._canonical import normalize_url
from ._canonical import thumbprint
from ._compact import decode_header
from ._compact import parse_payload
from ._compact import split_compact
from ._exceptions import InvalidClaim
from ._exceptions import InvalidDPoPProof
from ._exceptions import InvalidToken
from ._exceptions import MalformedToken

#: Asymmetric algorithms only, each bound to one key type (§4.2): never "none", never HS*.
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
    "PS256": ("RSA", None),
    "RS256": ("RSA", None),
}
#: For the ``algs`` attribute of a ``DPoP`` challenge (§7.1).
ALGS_CHALLENGE = " ".join(ALGORITHMS)
DEFAULT_MAX_AGE = 60.0
DEFAULT_REPLAY_CACHE_SIZE = 100_000
MAX_PROOF_BYTES = 8192
_MAX_CLAIM_CHARS = 2048
_MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "x5c", "crit", "b64", "zip", "enc"})
_TYPES = frozenset({"dpop+jwt", "application/dpop+jwt"})
_JWS = jwt.PyJWS()


class DPoPBindingError(InvalidToken):
    """The token's key binding and the request's scheme disagree (answered with a DPoP challenge)."""

    default_description = "the access token is DPoP-bound: send it with Authorization: DPoP and a DPoP proof"


class ProofChecker:
    """Checks proofs against bound tokens; holds the replay cache (thread-safe)."""

    def __init__(
        self,
        max_age: float = DEFAULT_MAX_AGE,
        replay_cache_size: int = DEFAULT_REPLAY_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._seen = _ReplayCache(replay_cache_size)

    def check(
        self,
        token: str,
        claims: dict[str, Any],
        proof: object,
        method: object,
        url: object,
    ) -> None:
        """Raise unless ``proof`` (None: a Bearer request) fits ``token`` and the request."""
        jkt = _bound_key(claims)
        if proof is None:
            if jkt is not None:
                raise DPoPBindingError()
            return
        if jkt is None:
            raise DPoPBindingError("the access token is not DPoP-bound: send it with Authorization: Bearer")
        if not isinstance(method, str) or not isinstance(url, str):
            raise TypeError("verify(dpop_proof=...) needs the request's method and url")
        jwk, payload = _read(proof)
        now = self._clock()
        htm, htu, iat, jti, ath = (payload.get(name) for name in ("htm", "htu", "iat", "jti", "ath"))
        if htm != method:
            raise InvalidDPoPProof("the DPoP proof was made for another HTTP method")
        expected = normalize_url(url)
        if expected is None or normalize_url(htu) != expected:
            raise InvalidDPoPProof("the DPoP proof was made for another URL")
        if not now - self.max_age <= iat <= now + self.max_age:
            raise InvalidDPoPProof("the DPoP proof is too old or from the future")
        if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(token)):
            raise InvalidDPoPProof("the DPoP proof ath does not match the access token")
        if not hmac.compare_digest(thumbprint(jwk), jkt):
            raise InvalidDPoPProof("the DPoP proof is signed by another key than the token is bound to")
        # Last: only a proof good in every other way takes a place in the cache.
        key = hashlib.sha256(f"{jkt}\0{jti}".encode("utf-8", "surrogatepass")).digest()
        if not self._seen.add(key, iat + self.max_age, now):
            raise InvalidDPoPProof("the DPoP proof was used already")


def _bound_key(claims: dict[str, Any]) -> str | None:
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not isinstance(jkt, str) or not jkt:
        # Bound to something this verifier cannot check (mTLS, a bare key): never a bearer token.
        raise InvalidClaim("the access token is bound to a key this service cannot check")
    return jkt


def _read(proof: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (jwk, payload) of a proof whose form, header, signature and claim types are right."""
    try:
        header_b64, _, _ = split_compact(proof, MAX_PROOF_BYTES)
        header = decode_header(header_b64)
    except MalformedToken:
        raise InvalidDPoPProof("the DPoP proof is not a well-formed compact JWS") from None
    typ, alg, jwk = header.get("typ"), header.get("alg"), header.get("jwk")
    if not isinstance(typ, str) or typ.lower() not in _TYPES:
        raise InvalidDPoPProof("the DPoP proof typ is not dpop+jwt")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise InvalidDPoPProof("the DPoP proof algorithm is not accepted")
    if _FORBIDDEN_HEADERS & header.keys():
        raise InvalidDPoPProof("the DPoP proof header carries a parameter that is not accepted")
    key = _public_key(jwk, alg)
    try:
        signed = _JWS.decode_complete(proof, key, algorithms=[alg])
    except (jwt.PyJWTError, ValueError, TypeError):
        raise InvalidDPoPProof("the DPoP proof signature does not verify with its jwk") from None
    try:
        payload = parse_payload(signed["payload"])
    except MalformedToken:
        raise InvalidDPoPProof("the DPoP proof payload is not a JSON object") from None
    for name in ("jti", "htm", "htu"):
        value = payload.get(name)
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_CLAIM_CHARS:
            raise InvalidDPoPProof(f"the DPoP proof has no usable {name}")
    iat = payload.get("iat")
    if type(iat) not in (int, float) or not math.isfinite(iat):
        raise InvalidDPoPProof("the DPoP proof has no usable iat")
    return jwk, payload


def _public_key(jwk: object, alg: str) -> Any:
    if not isinstance(jwk, dict):
        raise InvalidDPoPProof("the DPoP proof header has no jwk")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise InvalidDPoPProof("the DPoP proof jwk must not contain a private key")
    kty, crv = ALGORITHMS[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise InvalidDPoPProof("the DPoP proof jwk is not a key for its algorithm")
    if not all(isinstance(jwk.get(name), str) and jwk[name].isascii() for name in THUMBPRINT_MEMBERS[kty]):
        raise InvalidDPoPProof("the DPoP proof jwk is incomplete")
    try:
        key = jwt.PyJWK(jwk, alg).key
    except (jwt.PyJWTError, ValueError, TypeError):
        raise InvalidDPoPProof("the DPoP proof jwk is not a valid public key") from None
    if isinstance(key, RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        raise InvalidDPoPProof("the DPoP proof RSA key is too short")
    return key


class _ReplayCache:
    """Proof identifiers seen, until their proof's window is over; at most ``size`` of them.

    Entries arrive in roughly the order they expire, so the oldest sit at the front:
    expired ones are dropped from there, and when the cache is full the oldest goes
    even if unexpired (the bound wins over perfect memory; see the module docstring).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: bytes, expires_at: float, now: float) -> bool:
        """Record ``key``; False when it is recorded and unexpired already."""
        with self._lock:
            entries = self._entries
            while entries:
                oldest, oldest_expiry = next(iter(entries.items()))
                if oldest_expiry > now and len(entries) < self._size:
                    break
                del entries[oldest]
            seen = entries.get(key)
            if seen is not None and seen > now:
                return False
            entries[key] = expires_at
            entries.move_to_end(key)
            return True

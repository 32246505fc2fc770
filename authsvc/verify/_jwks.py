"""The issuer's signing keys, cached, with a rate-limited refetch on an unknown ``kid``.

The shape follows PyJWT's ``jwks_client.py`` (refetch once on an unknown kid, monotonic
clock) with two differences that matter to a resource server: a failed refetch keeps the
last good key set instead of failing every request, and the refetch is rate-limited per
verifier rather than per cache lifetime, so a flood of random kids costs the issuer at
most one request per interval.

Each published key is bound to the one algorithm its JWK declares, and only RS256, ES256
and EdDSA (Ed25519) are kept: a key can never be used with an algorithm the token picks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from ._exceptions import UnknownKey
from ._exceptions import VerifierUnavailable
from ._fetch import FetchError
from ._log import RateLimitedLog
from ._log import logger

#: The only algorithms accepted, each bound to one key type; never "none", never HS*.
ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})
_CURVES = {"ES256": "P-256", "EdDSA": "Ed25519"}
#: RFC 7518 §3.3 asks for 2048 bits at least.
_MIN_RSA_BITS = 2048
#: Private members that have no business in a published key set.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})


class KeyCache:
    """Signing keys by kid; ``fetch`` returns the JWKS document as a dict."""

    def __init__(self, fetch: Callable[[], dict[str, Any]], refetch_interval: float, log: RateLimitedLog) -> None:
        self._fetch = fetch
        self._log = log
        self._refetch_interval = refetch_interval
        self._keys: dict[str, PyJWK] = {}
        self._loaded = False
        self._last_attempt: float | None = None
        self._last_success = 0.0
        self._lock = threading.Lock()

    def get(self, kid: str) -> PyJWK:
        """Return the key for ``kid``, refetching the JWKS at most once per interval."""
        key = self._keys.get(kid)  # the dict is replaced, never mutated: no lock needed
        if key is not None:
            return key
        with self._lock:
            key = self._keys.get(kid)  # another thread may have refetched meanwhile
            if key is None and self._may_fetch():
                self._refresh()
                key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._loaded:
            raise VerifierUnavailable("the issuer's signing keys cannot be fetched")
        raise UnknownKey()

    def refresh_if_older_than(self, max_age: float) -> None:
        """Refetch when the key set is older than ``max_age`` (a retired key must go)."""
        with self._lock:
            if time.monotonic() - self._last_success >= max_age and self._may_fetch():
                self._refresh()

    def _may_fetch(self) -> bool:
        if self._last_attempt is None:
            return True
        # Before the first success retry sooner: nothing at all can be verified yet.
        interval = self._refetch_interval if self._loaded else min(1.0, self._refetch_interval)
        return time.monotonic() - self._last_attempt >= interval

    def _refresh(self) -> None:
        self._last_attempt = time.monotonic()
        try:
            keys = parse_jwks(self._fetch())
        except FetchError as exc:
            self._log.warning("jwks", "JWKS fetch failed, keeping %d cached keys: %s", len(self._keys), exc)
            return
        if not keys:
            self._log.warning("jwks", "JWKS has no usable signing key, keeping %d cached keys", len(self._keys))
            return
        self._keys = keys
        self._loaded = True
        self._last_success = time.monotonic()


def parse_jwks(doc: dict[str, Any]) -> dict[str, PyJWK]:
    """Return the usable signing keys of a JWKS document by kid; skip (and log) the rest."""
    members = doc.get("keys")
    if not isinstance(members, list):
        raise FetchError("JWKS has no keys array")
    keys: dict[str, PyJWK] = {}
    ambiguous: set[str] = set()
    for jwk in members:
        key = _signing_key(jwk)
        if key is None:
            continue
        if key.key_id in keys:
            # Two keys under one kid: which one a token means is anyone's guess.
            ambiguous.add(key.key_id)
        keys[key.key_id] = key
    for kid in ambiguous:
        logger.warning("JWKS key %.64r skipped: the kid is published more than once", kid)
        del keys[kid]
    return keys


def _signing_key(jwk: object) -> PyJWK | None:
    if not isinstance(jwk, dict):
        return None
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig":
        return None
    if not isinstance(alg, str) or alg not in ALGORITHMS or _PRIVATE_MEMBERS & jwk.keys():
        logger.warning("JWKS key %.64r skipped: alg %.16r not accepted or private", kid, alg)
        return None
    if alg in _CURVES and jwk.get("crv") != _CURVES[alg]:
        logger.warning("JWKS key %.64r skipped: curve does not match %s", kid, alg)
        return None
    try:
        key = PyJWK(jwk, algorithm=alg)
        # prepare_key checks the key type against the algorithm now, so a mismatched key
        # is dropped at load instead of failing at every verify.
        prepared = key.Algorithm.prepare_key(key.key)
    except (PyJWTError, TypeError, ValueError) as exc:
        logger.warning("JWKS key %.64r skipped: %s", kid, exc)
        return None
    if isinstance(prepared, RSAPublicKey) and prepared.key_size < _MIN_RSA_BITS:
        logger.warning("JWKS key %.64r skipped: RSA key of %d bits", kid, prepared.key_size)
        return None
    return key

"""The public keys a ``private_key_jwt`` client signs its assertions with.

A client registers its JWK Set inline (``--jwks-file``) or by URL
(``--jwks-uri``). A URL is fetched with a bounded cache: at most
``MAX_ENTRIES`` clients' sets, each kept ``TTL`` seconds, fetched over https
(http on loopback only) without following redirects, within ``TIMEOUT``
seconds and ``MAX_BYTES``. An assertion naming an unknown ``kid`` triggers
one refetch, at most once per ``REFETCH_INTERVAL`` per URL, so a client can
rotate its keys without waiting for the TTL and a stream of made-up kids
cannot turn the issuer into a request amplifier. A failed fetch keeps the
keys cached before it.

Only the public parts of asymmetric signing keys are kept: a key with
private members, a symmetric key, or one marked for encryption is ignored.
"""

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable

from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from joserfc.jwk import OKPKey
from joserfc.jwk import RSAKey

from .. import accounts

log = logging.getLogger(__name__)

TTL = 300.0
MAX_ENTRIES = 256
REFETCH_INTERVAL = 5.0
TIMEOUT = 3.0
MAX_BYTES = 64 * 1024
MAX_KEYS = 20

# Signature algorithm → (key type, curve). Asymmetric only: never HS*, never "none".
ALGORITHMS = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}
_KEY_CLASSES = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}


class ClientKeysUnavailable(Exception):
    """The client's JWK Set could not be read (and none was cached)."""


class NoMatchingKey(Exception):
    """No key of the client fits the assertion's ``kid`` and ``alg``."""


def public_signing_keys(doc) -> list[dict]:
    """The usable public signing JWKs of a JWK Set document (anything else is dropped)."""
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list):
        raise ValueError("a JWK Set is a JSON object with a 'keys' array")
    usable = []
    for jwk in keys[:MAX_KEYS]:
        if not isinstance(jwk, dict) or jwk.get("kty") not in _KEY_CLASSES:
            continue
        if "d" in jwk or jwk.get("use", "sig") != "sig":
            continue
        usable.append(jwk)
    return usable


def select_key(jwks: list[dict], kid, alg: str):
    """Return the joserfc key for ``kid``/``alg``; NoMatchingKey when none fits.

    Without a ``kid`` the client must have exactly one key fitting ``alg``.
    A key that names its own ``alg`` is used with that algorithm only.
    """
    kty, crv = ALGORITHMS[alg]
    fitting = [
        jwk
        for jwk in jwks
        if jwk.get("kty") == kty
        and (crv is None or jwk.get("crv") == crv)
        and jwk.get("alg", alg) == alg
        and (kid is None or jwk.get("kid") == kid)
    ]
    if len(fitting) != 1:
        raise NoMatchingKey("no key of the client matches the assertion's kid and alg")
    try:
        key = _KEY_CLASSES[kty].import_key(fitting[0])
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise NoMatchingKey("the client's key cannot be read") from error
    if kty == "RSA" and key.raw_value.key_size < 2048:
        raise NoMatchingKey("the client's RSA key is shorter than 2048 bits")
    return key


class ClientKeys:
    """Resolves a client record's JWKs, inline or from its ``jwks_uri`` (cached per process)."""

    def __init__(self, fetch: Callable[[str], dict] | None = None, clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch or fetch_jwks
        self._clock = clock
        self._lock = threading.Lock()
        # uri → (keys, fetched_at); last_attempt kept apart so a failure is not retried at once.
        self._cache: OrderedDict[str, tuple[list[dict], float]] = OrderedDict()
        self._last_attempt: dict[str, float] = {}

    def keys_for(self, record, *, refresh: bool = False) -> list[dict]:
        """The client's public signing JWKs; ``refresh`` asks for a refetch (an unknown kid)."""
        if record.jwks:
            return public_signing_keys(json.loads(record.jwks))
        if not record.jwks_uri:
            return []
        return self._from_uri(record.jwks_uri, refresh)

    def _from_uri(self, uri: str, refresh: bool) -> list[dict]:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(uri)
            if cached is not None:
                self._cache.move_to_end(uri)
            fresh = cached is not None and now - cached[1] < TTL
            recently_tried = now - self._last_attempt.get(uri, float("-inf")) < REFETCH_INTERVAL
            if (fresh and not refresh) or recently_tried:
                if cached is None:
                    raise ClientKeysUnavailable("the client's JWK Set could not be fetched")
                return cached[0]
            self._last_attempt[uri] = now
        try:
            keys = public_signing_keys(self._fetch(uri))
        except (OSError, ValueError) as error:
            log.warning("cannot fetch client JWK Set %s: %s", uri, error)
            if cached is None:
                raise ClientKeysUnavailable("the client's JWK Set could not be fetched") from None
            return cached[0]
        with self._lock:
            self._cache[uri] = (keys, now)
            self._cache.move_to_end(uri)
            while len(self._cache) > MAX_ENTRIES:
                old, _ = self._cache.popitem(last=False)
                self._last_attempt.pop(old, None)
        return keys


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def fetch_jwks(uri: str) -> dict:
    """GET a JWK Set: https (http on loopback), no redirects, bounded time and size."""
    accounts.validate_jwks_uri(uri)
    request = urllib.request.Request(uri, headers={"Accept": "application/json", "User-Agent": "authsvc"})
    try:
        with _opener.open(request, timeout=TIMEOUT) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            body = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as error:
        raise ValueError(f"HTTP {error.code}") from None
    if len(body) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc

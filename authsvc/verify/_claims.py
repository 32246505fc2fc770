"""The rules an authsvc access token must follow, header and claims (RFC 9068).

PyJWT verifies the signature, ``exp``/``nbf``/``iat`` against the leeway, and ``iss``/``aud``
by exact comparison; the checks here cover what it leaves open: which header parameters
may appear at all, explicit typing, and the JSON types of the claims. PyJWT reads ``exp``
with ``int()``, so ``"exp": "9999999999"`` passes it, and before 2.11 ``"exp": 1e309`` or
``"exp": {}`` escaped as a bare TypeError; checked first, neither reaches it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import jwt

from ._exceptions import ExpiredToken
from ._exceptions import InsufficientScope
from ._exceptions import InvalidAudience
from ._exceptions import InvalidClaim
from ._exceptions import InvalidIssuer
from ._exceptions import InvalidSignature
from ._exceptions import InvalidToken
from ._exceptions import MalformedToken
from ._jwks import ALGORITHMS

#: RFC 9068 §4: the only types an access token may declare; compared case-insensitively
#: as media types are (RFC 7515 §4.1.9).
_TYPES = frozenset({"at+jwt", "application/at+jwt"})
#: Header parameters that would let the token choose its own key or change how it is
#: processed. authsvc understands no extensions, so any "crit" is refused (RFC 7515 §4.1.11).
_FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "x5c", "jwk", "crit", "b64", "zip", "enc"})
_MAX_KID_LENGTH = 256
#: Claims RFC 9068 §2.2 requires, all of which PyJWT is told to insist on too.
REQUIRED = ("iss", "aud", "exp", "iat", "jti", "sub", "client_id", "scope")
_STRINGS = ("jti", "sub", "client_id")


def check_header(header: Mapping[str, Any]) -> tuple[str, str]:
    """Return ``(alg, kid)`` of an acceptable access-token header, else raise MalformedToken."""
    forbidden = _FORBIDDEN_HEADERS & header.keys()
    if forbidden:
        raise MalformedToken(f"the access token header may not carry {sorted(forbidden)[0]}")
    alg = header.get("alg")
    # Exact match against an allowlist: "none", "None", "HS256" and "PS256" all fail here.
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise MalformedToken("the access token algorithm is not accepted")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _TYPES:
        raise MalformedToken("the token is not an access token (typ)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= _MAX_KID_LENGTH:
        raise MalformedToken("the access token has no usable kid")
    return alg, kid


def check_claims(claims: Mapping[str, Any]) -> None:
    """Raise InvalidClaim unless every claim has the type RFC 9068 gives it."""
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if name in claims and (type(value) not in (int, float) or not math.isfinite(value)):
            raise InvalidClaim(f"the access token {name} is not a number")
    for name in _STRINGS:
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise InvalidClaim(f"the access token {name} is not a non-empty string")
    if not isinstance(claims.get("scope"), str):
        raise InvalidClaim("the access token scope is not a string")
    if "sid" in claims and not isinstance(claims["sid"], str):
        raise InvalidClaim("the access token sid is not a string")


def check_scopes(claims: Mapping[str, Any], required: tuple[str, ...]) -> None:
    """Raise InsufficientScope unless every required scope was granted."""
    granted = set(claims["scope"].split())
    if not granted.issuperset(required):
        raise InsufficientScope(required)


def as_scopes(scopes: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise ``"a b"`` or ``["a", "b"]`` to a tuple; a bare string is not iterated."""
    if isinstance(scopes, str):
        return tuple(scopes.split())
    return tuple(scopes)


def translate(exc: jwt.PyJWTError) -> InvalidToken:
    """Map a PyJWT error to this library's tree (the caller raises it ``from exc``)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return ExpiredToken()
    if isinstance(exc, jwt.ImmatureSignatureError):
        return InvalidClaim("the access token is not valid yet")
    if isinstance(exc, jwt.InvalidAudienceError):
        return InvalidAudience()
    if isinstance(exc, jwt.InvalidIssuerError):
        return InvalidIssuer()
    if isinstance(exc, jwt.MissingRequiredClaimError):
        if exc.claim == "aud":
            return InvalidAudience()
        if exc.claim == "iss":
            return InvalidIssuer()
        return InvalidClaim(f"the access token has no {exc.claim}")
    if isinstance(exc, (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError)):
        return InvalidSignature()
    if isinstance(exc, jwt.DecodeError):
        return MalformedToken()
    return InvalidClaim()

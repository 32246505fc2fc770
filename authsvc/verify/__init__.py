"""Verify authsvc access tokens offline, in the resource server that receives them.

``TokenVerifier(issuer, audience)`` reads the issuer's discovery document once, caches its
JWKS (refetching on an unknown ``kid`` at most once per interval) and keeps its revocation
list current in a background thread, optionally hurried along by Redis fan-out. Then
``verifier.verify(token, scopes=...)`` returns the claims of a valid RFC 9068 access token
or raises an ``InvalidToken`` subclass. A DPoP-bound token (RFC 9449, ``cnf.jkt``) is
verified with its proof: ``verify(token, dpop_proof=..., method=..., url=...)``.
``require_token`` (Flask) and ``VerifierMiddleware`` (WSGI) accept ``Authorization: Bearer``
and ``Authorization: DPoP`` and turn those exceptions into RFC 6750 / RFC 9449 responses.

``audience`` is this service's own identifier, the one its clients are registered with
(``clients create --audience URI``), never the issuer's URL: a token whose ``aud`` is the
issuer was issued to a client with no audience and is meant only for the issuer's own
endpoints. A verifier built with the issuer as its audience logs a warning once.

Only the standard library, PyJWT and cryptography are imported here; Flask and redis are
imported when, and only when, ``require_token`` or a ``redis_url`` asks for them. Nothing
from the rest of authsvc is imported, so a resource server can install this alone.
"""

from ._adapters import VerifierMiddleware
from ._adapters import require_token
from ._exceptions import ExpiredToken
from ._exceptions import InsufficientScope
from ._exceptions import InvalidAudience
from ._exceptions import InvalidClaim
from ._exceptions import InvalidDPoPProof
from ._exceptions import InvalidIssuer
from ._exceptions import InvalidSignature
from ._exceptions import InvalidToken
from ._exceptions import MalformedToken
from ._exceptions import RevokedToken
from ._exceptions import UnknownKey
from ._exceptions import VerifierUnavailable
from ._verifier import TokenVerifier

__all__ = [
    "ExpiredToken",
    "InsufficientScope",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidDPoPProof",
    "InvalidIssuer",
    "InvalidSignature",
    "InvalidToken",
    "MalformedToken",
    "RevokedToken",
    "TokenVerifier",
    "UnknownKey",
    "VerifierMiddleware",
    "VerifierUnavailable",
    "require_token",
]

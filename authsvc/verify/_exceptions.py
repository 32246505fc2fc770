"""Every way ``TokenVerifier.verify`` can say no.

The tree, in the manner of httpx's ``_exceptions.py``::

    InvalidToken                       401 invalid_token
    ├── MalformedToken                 not a compact JWS we accept (size, charset, JSON, header)
    ├── InvalidSignature               signature or algorithm does not check out
    ├── UnknownKey                     no published key has this kid
    ├── ExpiredToken                   exp is past (beyond leeway)
    ├── InvalidIssuer                  iss is not exactly the configured issuer
    ├── InvalidAudience                aud does not name this resource server
    ├── InvalidClaim                   a required claim is missing, mistyped or not yet valid
    ├── RevokedToken                   listed on the issuer's revocation list
    ├── InvalidDPoPProof               401 invalid_dpop_proof: the DPoP proof is missing or fails (RFC 9449)
    ├── InsufficientScope              403 insufficient_scope: valid, but lacks a scope
    └── VerifierUnavailable            503: cannot decide (issuer unreachable, stale list)

Every class carries what an HTTP adapter needs: ``error`` (the RFC 6750 §3.1 code),
``status_code`` and a ``description`` safe to show the caller. Descriptions are fixed
strings: nothing taken from the token is echoed back, so they cannot carry an attacker's
bytes into a response header or a log line.
"""

from __future__ import annotations


class InvalidToken(Exception):
    """The token must not be accepted."""

    error = "invalid_token"
    status_code = 401
    default_description = "the access token is invalid"

    def __init__(self, description: str | None = None) -> None:
        self.description = description or self.default_description
        super().__init__(self.description)


class MalformedToken(InvalidToken):
    """The token is not a well-formed compact JWS with an acceptable header."""

    default_description = "the access token is malformed"


class InvalidSignature(InvalidToken):
    """The signature does not verify with the key and algorithm the issuer published."""

    default_description = "the access token signature is invalid"


class UnknownKey(InvalidToken):
    """The token's ``kid`` names no key in the issuer's JWKS."""

    default_description = "the access token was signed by an unknown key"


class ExpiredToken(InvalidToken):
    """The token's ``exp`` is in the past, beyond the leeway."""

    default_description = "the access token has expired"


class InvalidIssuer(InvalidToken):
    """``iss`` is missing or not exactly the configured issuer."""

    default_description = "the access token was issued by another issuer"


class InvalidAudience(InvalidToken):
    """``aud`` is missing or does not contain this resource server's audience."""

    default_description = "the access token is not meant for this audience"


class InvalidClaim(InvalidToken):
    """A claim RFC 9068 requires is missing, has the wrong type, or is not valid yet."""

    default_description = "the access token has an invalid claim"


class RevokedToken(InvalidToken):
    """The issuer revoked the token (its jti, sid, subject or client)."""

    default_description = "the access token has been revoked"


class InvalidDPoPProof(InvalidToken):
    """The DPoP proof is missing, malformed, replayed, or made for another request or key.

    RFC 9449 §7.1: answered with a ``DPoP`` challenge and the error ``invalid_dpop_proof``.
    """

    error = "invalid_dpop_proof"
    default_description = "the DPoP proof is invalid"


class InsufficientScope(InvalidToken):
    """The token is valid but lacks a scope the resource requires (RFC 6750 §3.1)."""

    error = "insufficient_scope"
    status_code = 403
    default_description = "the access token lacks a required scope"

    def __init__(self, scopes: tuple[str, ...], description: str | None = None) -> None:
        #: The scopes the resource requires, for the challenge's ``scope`` attribute.
        self.scopes = tuple(scopes)
        super().__init__(description)


class VerifierUnavailable(InvalidToken):
    """The verifier cannot decide: issuer unreachable at first use, or revocation list stale.

    A 503 rather than a 401: the token may be perfectly good, and a 401 would send every
    client to the token endpoint of an issuer that is probably the thing that is down.
    """

    error = "temporarily_unavailable"
    status_code = 503
    default_description = "the token cannot be verified right now"

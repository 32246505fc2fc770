"""The public API of authsvc.verify is exactly what __all__ says (as httpx pins its own)."""

from __future__ import annotations

import authsvc.verify
from authsvc.verify import InvalidToken

EXPECTED = {
    "TokenVerifier",
    "require_token",
    "VerifierMiddleware",
    "InvalidToken",
    "ExpiredToken",
    "RevokedToken",
    "InvalidSignature",
    "UnknownKey",
    "InvalidAudience",
    "InvalidIssuer",
    "InsufficientScope",
    "InvalidClaim",
    "InvalidDPoPProof",
    "MalformedToken",
    "VerifierUnavailable",
}


def test_all_is_pinned():
    assert set(authsvc.verify.__all__) == EXPECTED
    assert len(authsvc.verify.__all__) == len(EXPECTED)


def test_every_public_name_is_exported():
    public = {name for name in vars(authsvc.verify) if not name.startswith("_")}
    assert public == EXPECTED


def test_exception_tree():
    exceptions = {getattr(authsvc.verify, name) for name in EXPECTED} - {
        authsvc.verify.TokenVerifier,
        authsvc.verify.require_token,
        authsvc.verify.VerifierMiddleware,
    }
    for exc in exceptions:
        assert issubclass(exc, InvalidToken)
        assert exc.__doc__
        assert exc.error in {"invalid_token", "insufficient_scope", "temporarily_unavailable", "invalid_dpop_proof"}
        assert exc.status_code in {401, 403, 503}
        assert exc.__module__ == "authsvc.verify._exceptions"
    assert authsvc.verify.InsufficientScope.status_code == 403
    assert authsvc.verify.RevokedToken.status_code == 401

"""The canonical forms DPoP compares, one implementation for the verifier and the issuer.

- ``normalize_url``: an ``htu`` or a request URL as RFC 3986 §6.2.2–6.2.3 normalises it
  (RFC 9449 §4.3 step 9 compares them so).
- ``thumbprint``: a public JWK's RFC 7638 SHA-256 thumbprint (``jkt``).
- ``access_token_hash``: a proof's ``ath`` for a token (RFC 9449 §4.2).

Standard library only: the issuer imports this module (the one part of ``authsvc.verify``
it may), and it must bring nothing of the verifier with it.
"""

import base64
import hashlib
import json
import re
from urllib.parse import urlsplit

# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def b64(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(token: str) -> str:
    """``ath`` (RFC 9449 §4.2): base64url of the SHA-256 of the token's ASCII bytes."""
    return b64(hashlib.sha256(token.encode("ascii")).digest())


def thumbprint(jwk: dict) -> str:
    """RFC 7638 JWK SHA-256 thumbprint: the required members, sorted, no whitespace.

    The caller has checked that ``jwk`` has its key type's members as ASCII strings.
    """
    members = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    return b64(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


def normalize_url(url: object) -> str | None:
    """scheme://host[:port]/path, per RFC 3986 §6.2.2 and §6.2.3; None when not an http(s) URL.

    Query and fragment are dropped (RFC 9449 §4.3 step 9); scheme and host are lower-cased,
    a default port dropped, an empty path made "/", percent-encodings upper-cased and
    unreserved characters decoded.
    """
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}{_PERCENT.sub(_normal_escape, parts.path) or '/'}"


def _normal_escape(match: re.Match) -> str:
    char = chr(int(match.group()[1:], 16))
    return char if char in _UNRESERVED else match.group().upper()

"""Structural checks on a compact JWS, and the strict reading of its JSON parts.

Everything here is cheap, bounded and refuses rather than repairs: a token longer than
the cap is rejected on its length alone, before base64 or JSON see it (PyJWT has no cap;
Authlib's absence of one was CVE-2025-61920). Base64url must be canonical (no padding, no
stray trailing bits) and JSON must be UTF-8 with no duplicate member names, because Python
keeps the last duplicate and other verifiers keep the first (RFC 8725bis, "Multiplicity
of JSON Encodings"). The segments are checked before any signature work; the payload is
parsed once, after the signature, through PyJWT's payload hook (see ``_verifier``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from ._exceptions import MalformedToken

#: One compact JWS: three non-empty base64url segments. No padding, no whitespace, no
#: braces (JSON serialization), no fourth or fifth segment (JWE).
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
DEFAULT_MAX_TOKEN_BYTES = 8192
#: Bits the last base64url character carries beyond the data, by segment length mod 4.
_UNUSED_BITS = {0: 0, 2: 4, 3: 2}


def split_compact(token: object, max_bytes: int) -> tuple[str, str, str]:
    """Return the three base64url segments of ``token`` after the structural checks."""
    if not isinstance(token, (str, bytes)):
        raise MalformedToken("the access token is not a string")
    if len(token) > max_bytes:
        raise MalformedToken("the access token is too long")
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise MalformedToken("the access token is not ASCII") from None
    if not _COMPACT.fullmatch(token):
        raise MalformedToken("the access token is not a compact JWS")
    header_b64, payload_b64, signature_b64 = token.split(".")
    # Payload and signature are decoded by PyJWT; checked here so no version lets slack through.
    _check_canonical(payload_b64)
    _check_canonical(signature_b64)
    return header_b64, payload_b64, signature_b64


def decode_header(segment: str) -> dict[str, Any]:
    """Return the JSON object a header segment from ``split_compact`` encodes."""
    return _json_object(_b64decode(segment), "header")


def parse_payload(raw: bytes) -> dict[str, Any]:
    """Return the JSON object of a payload (already base64url-decoded) under the strict rules."""
    return _json_object(raw, "payload")


def _check_canonical(segment: str) -> None:
    # A remainder of 1 cannot come from any byte string. Otherwise the last character
    # carries 2 or 4 bits beyond the data, which must be zero: decoders drop them
    # silently, so one token would have several spellings (RFC 7515 Appendix C).
    unused = _UNUSED_BITS.get(len(segment) % 4)
    if unused is None:
        raise MalformedToken("the access token has a bad base64url segment")
    if unused and _ALPHABET.index(segment[-1]) & ((1 << unused) - 1):
        raise MalformedToken("the access token has non-canonical base64url")


def _b64decode(segment: str) -> bytes:
    _check_canonical(segment)
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken("the access token has a bad base64url segment") from None


def _json_object(raw: bytes, part: str) -> dict[str, Any]:
    # Decode as UTF-8 ourselves: json.loads(bytes) would also guess UTF-16 and UTF-32.
    try:
        text = raw.decode("utf-8")
        value = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedToken(f"the access token {part} is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedToken(f"the access token {part} is not a JSON object")
    # Strict UTF-8 decoding admits no surrogate, so only a \u escape can bring one in.
    if "\\u" in text and _has_lone_surrogate(value):
        raise MalformedToken(f"the access token {part} is not valid UTF-8")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name")
    return obj


def _no_constants(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259 §6); Python accepts them by default.
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def _has_lone_surrogate(value: Any) -> bool:
    # "\ud800" is valid JSON text yet no Unicode scalar value; walk with an explicit
    # stack because the length cap, not the recursion limit, bounds the depth.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False

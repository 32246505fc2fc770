"""Structural checks on a compact JWS, done before any signature work.

Everything here is cheap, bounded and refuses rather than repairs: a token longer than
the cap is rejected on its length alone, before base64 or JSON see it (PyJWT has no cap;
Authlib's absence of one was CVE-2025-61920). Base64url must be canonical (no padding, no
stray trailing bits) and JSON must be UTF-8 with no duplicate member names, because Python
keeps the last duplicate and other verifiers keep the first (RFC 8725bis, "Multiplicity
of JSON Encodings").
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

DEFAULT_MAX_TOKEN_BYTES = 8192


def split_compact(token: object, max_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the header and payload of ``token`` after the structural checks."""
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
    header_b64, payload_b64, _ = token.split(".")
    header = _json_object(_b64decode(header_b64), "header")
    payload = _json_object(_b64decode(payload_b64), "payload")
    return header, payload


def _b64decode(segment: str) -> bytes:
    # A remainder of 1 cannot come from any byte string; the re-encode comparison below
    # catches non-zero trailing bits, which decoders otherwise silently drop.
    if len(segment) % 4 == 1:
        raise MalformedToken("the access token has a bad base64url segment")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken("the access token has a bad base64url segment") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != segment:
        raise MalformedToken("the access token has non-canonical base64url")
    return raw


def _json_object(raw: bytes, part: str) -> dict[str, Any]:
    # Decode as UTF-8 ourselves: json.loads(bytes) would also guess UTF-16 and UTF-32.
    try:
        text = raw.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedToken(f"the access token {part} is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedToken(f"the access token {part} is not a JSON object")
    if _has_lone_surrogate(value):
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

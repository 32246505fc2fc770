"""The verifier's only network reads: discovery, JWKS and the revocation list.

Plain ``urllib`` so the library needs nothing beyond the standard library for HTTP.
Redirects are not followed (as in PyJWT's ``jwks_client.py``): the issuer's metadata names
its endpoints exactly, and a redirect to elsewhere is more likely an attack than a move.
Bodies are read up to a cap so a misbehaving endpoint cannot exhaust memory.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

_USER_AGENT = "authsvc.verify"
_MAX_DOCUMENT_BYTES = 1 << 20
#: The revocation list grows with every revoked token still alive; give it more room.
MAX_REVOCATION_LIST_BYTES = 32 << 20


class FetchError(Exception):
    """A metadata endpoint could not be read or did not return what the contract says."""


@dataclasses.dataclass(frozen=True)
class Fetched:
    """One response: ``body`` is None on 304 Not Modified."""

    body: dict[str, Any] | None
    etag: str | None


@dataclasses.dataclass(frozen=True)
class Discovery:
    """The three endpoints the verifier reads from the issuer's discovery document."""

    issuer: str
    jwks_uri: str
    revocation_list_uri: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def get_json(
    url: str,
    *,
    timeout: float,
    etag: str | None = None,
    max_bytes: int = _MAX_DOCUMENT_BYTES,
) -> Fetched:
    """GET ``url`` and return its JSON object, or ``body=None`` on 304."""
    headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
    if etag is not None:
        headers["If-None-Match"] = etag
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(request, timeout=timeout) as response:
            raw = response.read(max_bytes + 1)
            new_etag = response.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 304 and etag is not None:
            return Fetched(None, exc.headers.get("ETag") or etag)
        raise FetchError(f"GET {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise FetchError(f"GET {url}: {exc}") from exc
    if len(raw) > max_bytes:
        raise FetchError(f"GET {url}: response larger than {max_bytes} bytes")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FetchError(f"GET {url}: not JSON") from exc
    if not isinstance(body, dict):
        raise FetchError(f"GET {url}: not a JSON object")
    return Fetched(body, new_etag)


def discover(issuer: str, *, timeout: float) -> Discovery:
    """Read the issuer's OpenID Connect discovery document and check it names this issuer."""
    # https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfigurationRequest
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    doc = get_json(url, timeout=timeout).body or {}
    # Byte-for-byte: a discovery document for another issuer is a mix-up, not a typo.
    if doc.get("issuer") != issuer:
        raise FetchError(f"GET {url}: discovery names a different issuer")
    return Discovery(
        issuer=issuer,
        jwks_uri=_http_url(doc, "jwks_uri", url),
        revocation_list_uri=_http_url(doc, "revocation_list_uri", url),
    )


def with_query(url: str, **params: object) -> str:
    """Return ``url`` with ``params`` added to its query string."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query.extend((name, str(value)) for name, value in params.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _http_url(doc: dict[str, Any], name: str, source: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or urllib.parse.urlsplit(value).scheme not in ("http", "https"):
        raise FetchError(f"GET {source}: {name} missing or not an http(s) URL")
    return value

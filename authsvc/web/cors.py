"""CORS for browser apps: a single-page app (a public client with PKCE) calls
``/token``, ``/revoke`` and ``/userinfo`` from JavaScript, and any page may read
the public key and discovery documents.

Each client names the origins its pages run on (``clients create
--allowed-origin``); nothing is ever answered with ``*`` there. A response is
readable by an origin only when the client the request names registered it:
``client_id`` in the body or the Basic credentials at ``/token`` and
``/revoke``, the access token's ``client_id`` at ``/userinfo``. A preflight
carries neither, so it is answered for an origin that any client registered;
the browser still drops the actual response unless it names that origin.

No response carries ``Access-Control-Allow-Credentials``: these endpoints
never read cookies, so a browser app sends its credentials in the request
and the browser's own cookies stay out of it.
"""

import logging

from flask import g
from flask import request

from ..errors import AuthsvcError
from ..errors import NotFound
from ..oauth.client_auth import basic_credentials
from ..oauth.errors import OAuth2Error
from . import server
from . import services

log = logging.getLogger(__name__)

# Public documents: the same answer for everyone, so "*" (never with credentials).
PUBLIC_DOCUMENTS = ("/jwks.json", "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
# Endpoints a browser app calls, with the methods a preflight may ask for.
CLIENT_ENDPOINTS = {"/token": ("POST",), "/revoke": ("POST",), "/userinfo": ("GET", "POST")}
# DPoP: the proof header of RFC 9449, sent to /token and /userinfo by browser apps.
ALLOWED_HEADERS = "Authorization, Content-Type, DPoP"
# Browsers cap this anyway (Chromium at 2 h); a removed origin stops working within it.
PREFLIGHT_MAX_AGE = "600"


def add_cors_headers(response):
    """After every request: the CORS headers its path and ``Origin`` call for."""
    path = request.path
    if path in PUBLIC_DOCUMENTS:
        _answer_anyone(response)
    elif path in CLIENT_ENDPOINTS:
        _answer_registered_origin(response, CLIENT_ENDPOINTS[path])
    return response


def set_token_client(client_id: str) -> None:
    """Record whose access token ``/userinfo`` was called with; that client's origins may read the answer."""
    g.cors_client_id = client_id


def _answer_anyone(response) -> None:
    response.headers["Access-Control-Allow-Origin"] = "*"
    if _is_preflight():
        response.headers["Access-Control-Allow-Methods"] = "GET"
        response.headers["Access-Control-Allow-Headers"] = "If-None-Match"
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    else:
        # A page that polls the JWKS itself revalidates with the ETag.
        response.headers["Access-Control-Expose-Headers"] = "ETag"


def _answer_registered_origin(response, methods) -> None:
    # The answer differs by Origin, so a cache must keep one copy per origin.
    _vary_on_origin(response.headers)
    origin = request.headers.get("Origin")
    if not origin or origin == "null":
        return
    try:
        if _is_preflight():
            allowed = request.headers["Access-Control-Request-Method"] in methods and _registered_by_any(origin)
        else:
            allowed = origin in _origins_of(_requesting_client_id())
    except AuthsvcError as error:
        # Without the store no origin is proven: the browser gets no CORS answer, the request itself is unharmed.
        log.warning("CORS check skipped: %s", error)
        return
    if not allowed:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    if _is_preflight():
        response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
    elif request.path == "/userinfo":
        # RFC 6750 §3: the app learns why its token failed from this header; RFC 9449 §9: the nonce to use.
        response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate, DPoP-Nonce"
    elif request.path == "/token":
        # RFC 9449 §8: the app reads the server nonce for its next DPoP proof.
        response.headers["Access-Control-Expose-Headers"] = "DPoP-Nonce"


def _vary_on_origin(headers) -> None:
    # What ``response.vary.add("Origin")`` does, without building a HeaderSet on every response.
    vary = headers.get("Vary")
    if not vary:
        headers["Vary"] = "Origin"
    elif "origin" not in (item.strip().lower() for item in vary.split(",")):
        headers["Vary"] = f"{vary}, Origin"


def _is_preflight() -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def _registered_by_any(origin: str) -> bool:
    return any(origin in client.allowed_origins for client in services().store.list_clients())


def _origins_of(client_id: str | None) -> tuple[str, ...]:
    if not client_id:
        return ()
    try:
        # The token endpoint's cache: a browser app's every token request asks this.
        return server().clients.get(client_id).allowed_origins
    except (NotFound, ValueError):
        return ()


def _requesting_client_id() -> str | None:
    """The client this request names: the token's at /userinfo, else the body's or the Basic user's."""
    if request.path == "/userinfo":
        return g.get("cors_client_id")
    # Only a body the view already parsed: parsing here could fail after the response was made.
    form = request.__dict__.get("form")
    if form is not None and form.get("client_id"):
        return form.get("client_id")
    try:
        credentials = basic_credentials(request.headers.get("Authorization"))
    except OAuth2Error:
        return None
    return credentials[0] if credentials else None

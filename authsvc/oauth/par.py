"""Pushed Authorization Requests (RFC 9126).

A client POSTs its authorization request to ``/par``, authenticated as at
the token endpoint (any method, ``private_key_jwt`` included). The request is
validated as ``/authorize`` would validate it, without a user, and stored for
``LIFETIME`` seconds under a hash of a fresh ``request_uri``; the answer is
``201 {"request_uri", "expires_in"}`` (§2.2). The browser is then sent to
``/authorize?client_id=…&request_uri=…``, where only the pushed parameters
count: anything else in that URL is ignored (§4, as JAR §6.3 for request
objects), so the request cannot be altered on its way through the browser.

A ``request_uri`` is single-use (§7.3). It is *read* as often as the login
and consent pages need (each comes back to ``/authorize`` with the same URL,
and a reload must not break the flow, §4) and *consumed* when the
authorization response is made (code issued or access denied), by one
conditional UPDATE, so two tabs cannot both get a code. Unused requests die
by time. Only the client that pushed a request can use it.

A DPoP proof sent with the push (RFC 9449 §10.1) is checked as at the token
endpoint (``htu`` is this endpoint's URL) and its key thumbprint is stored as
the request's ``dpop_jkt``, so the code can be exchanged only with a proof
by that key; a ``dpop_jkt`` parameter naming another key is refused.

Request objects (``request``) are not supported: ``request_not_supported``.
A client registered with ``--require-par`` is refused at ``/authorize``
without a ``request_uri``.
"""

import hashlib
import secrets

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.requests import OAuth2Request

from ..errors import NotFound
from ..store.sql_pushed_requests import PushedRequest
from .dpop import bind_pushed_request

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
LIFETIME = 60
ENDPOINT = "pushed_authorization_request"
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]  # + private_key_jwt (server.py)
# Parameters of client authentication, not of the authorization request.
CLIENT_AUTH_PARAMS = ("client_secret", "client_assertion", "client_assertion_type")
PROMPTS = {"none", "login", "consent"}


class RequestNotSupportedError(OAuth2Error):
    """OIDC Core §3.1.2.6: request objects (``request``) are not supported here."""

    error = "request_not_supported"


class InvalidRequestUriError(OAuth2Error):
    """OIDC Core §3.1.2.6: the ``request_uri`` is unknown, expired, used, or another client's."""

    error = "invalid_request_uri"


def request_uri_hash(request_uri: str) -> str:
    return hashlib.sha256(request_uri.encode("utf-8", "surrogatepass")).hexdigest()


def push(server, request) -> dict:
    """Authenticate the client, validate and store its authorization request; return the §2.2 answer.

    Raises OAuth2Error; none of them carries a redirect URI (errors here are JSON, §2.3).
    """
    try:
        client = server.authenticate_client(request, AUTH_METHODS, ENDPOINT)
        client_id = client.get_client_id()
        params = {key: value for key, value in request.form.items() if key not in CLIENT_AUTH_PARAMS}
        if "request" in params:
            raise RequestNotSupportedError("Request objects ('request') are not supported.")
        if "request_uri" in params:
            raise InvalidRequestError("'request_uri' cannot be pushed (RFC 9126 §2.1).")
        if params.get("client_id", client_id) != client_id:
            raise InvalidRequestError("client_id does not match the authenticated client.")
        params["client_id"] = client_id
        # RFC 9449 §10.1: a DPoP proof here binds the code to its key, as dpop_jkt would.
        bind_pushed_request(params, server.dpop.check_par_request(request, client), client)
        validate(server, params)
    except OAuth2Error as error:
        # §2.3: errors go back to the client in the response, never to a redirect URI.
        error.redirect_uri = None
        raise
    services = server.services
    request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
    services.store.create_pushed_request(
        PushedRequest(request_uri_hash(request_uri), client_id, params, services.clock() + LIFETIME)
    )
    return {"request_uri": request_uri, "expires_in": LIFETIME}


def validate(server, params: dict) -> None:
    """Check ``params`` as the authorization endpoint will, minus anything about the user."""
    oauth_request = OAuth2Request("GET", server.services.settings.issuer + "/authorize")
    oauth_request.payload = BasicOAuth2Payload(params)
    grant = server.get_authorization_grant(oauth_request)
    grant.validate_no_multiple_request_parameter(oauth_request)
    # Not validate_consent_request: its prompt check wants a signed-in user.
    grant.validate_authorization_request()
    prompts = set(params.get("prompt", "").split())
    if prompts - PROMPTS or ("none" in prompts and len(prompts) > 1):
        raise InvalidRequestError("Invalid 'prompt' parameter.")
    if params.get("response_mode") not in (None, "query"):
        raise InvalidRequestError("Only response_mode=query is supported.")
    max_age = params.get("max_age")
    if max_age is not None and not (max_age.isdigit() and len(max_age) < 10):
        raise InvalidRequestError("Invalid 'max_age' parameter.")


def pushed_for_authorize(services, args) -> PushedRequest | None:
    """The pushed request ``/authorize`` must act on, or None for a plain request.

    Raises OAuth2Error (without a redirect URI: none is proven yet) for a
    request object, an unusable ``request_uri``, or a plain request from a
    client registered to push.
    """
    if "request" in args:
        raise RequestNotSupportedError("Request objects ('request') are not supported.")
    client_id = args.get("client_id")
    request_uri = args.get("request_uri")
    if request_uri is None:
        if client_id and _requires_par(services, client_id):
            raise InvalidRequestError("This client must push its authorization requests (RFC 9126).")
        return None
    if not client_id:
        raise InvalidRequestError("Missing 'client_id' parameter.")
    unusable = InvalidRequestUriError("The request_uri is unknown, expired or used. Start again at the app.")
    if not request_uri.startswith(REQUEST_URI_PREFIX):
        raise unusable
    try:
        pushed = services.store.get_pushed_request(request_uri_hash(request_uri), services.clock())
    except NotFound:
        raise unusable from None
    if pushed.client_id != client_id:
        raise unusable
    return pushed


def pushed_at(pushed: PushedRequest) -> float:
    return pushed.expires_at - LIFETIME


def consume(services, pushed: PushedRequest) -> bool:
    """Mark the request used; False when another response (another tab) used it first, or it expired."""
    return services.store.consume_pushed_request(pushed.request_uri_hash, pushed.client_id, services.clock())


def _requires_par(services, client_id: str) -> bool:
    try:
        return services.store.get_client(client_id).require_par
    except (NotFound, ValueError):
        return False  # the authorization endpoint says what is wrong with the client

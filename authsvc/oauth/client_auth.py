"""Client authentication at the token, revocation and introspection endpoints.

Replaces Authlib's ``client_secret_basic`` and ``client_secret_post`` readers
so that malformed credentials are an ``invalid_client`` answer instead of an
exception, and so that two credentials in one request are refused
(RFC 6749 §2.3: a client MUST NOT use more than one method).
"""

import base64
import binascii
from urllib.parse import unquote_plus

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.errors import InvalidRequestError


def _basic_credentials(request):
    return basic_credentials(request.headers.get("Authorization"))


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(client_id, secret)`` from an ``Authorization: Basic`` value; None for another scheme.

    Malformed Basic credentials are ``invalid_client``.
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, binascii.Error):
        raise InvalidClientError(description="Malformed Basic credentials.") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise InvalidClientError(description="Malformed Basic credentials.")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    return unquote_plus(client_id), unquote_plus(secret)


def authenticate_basic(query_client, request):
    credentials = _basic_credentials(request)
    if credentials is None:
        return None
    if request.form.get("client_secret"):
        raise InvalidRequestError("Use one client authentication method, not two.")
    client_id, secret = credentials
    body_client_id = request.form.get("client_id")
    if body_client_id and body_client_id != client_id:
        raise InvalidRequestError("client_id in the body does not match the Authorization header.")
    client = query_client(client_id)
    if client is not None and client.check_client_secret(secret):
        return client
    return None


def authenticate_post(query_client, request):
    if _basic_credentials(request) is not None:
        return None
    client_id = request.form.get("client_id")
    secret = request.form.get("client_secret")
    if not client_id or not secret:
        return None
    client = query_client(client_id)
    if client is not None and client.check_client_secret(secret):
        return client
    return None

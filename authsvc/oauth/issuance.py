"""How a grant turns into tokens: the access token, the refresh token record,
and the sealed copy of a rotation's response kept for the grace window.

Two rules decide what a token response holds:

- Audience (RFC 8707): an access token names one service. A request with
  ``resource`` gets that resource when it is registered for the client; a
  request without one gets the client's default, the first audience it was
  registered with. A client with no audience gets tokens whose ``aud`` is the
  issuer, good only at the issuer's own endpoints (userinfo, introspection):
  no resource server should accept them.
- Refresh tokens (OpenID Connect Core §11): issued to a user's grant only when
  the client may use the refresh_token grant and either the user granted
  ``offline_access`` (on the consent page) or the client is first-party.
"""

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.errors import InvalidScopeError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..store import RefreshToken
from .dpop import proof_of


class InvalidTargetError(OAuth2Error):
    """The requested resource is invalid, unknown, or not allowed for this client.

    https://www.rfc-editor.org/rfc/rfc8707#section-2
    """

    error = "invalid_target"


@dataclass
class Issued:
    """What a token response created, for ``save_token`` to record."""

    claims: dict
    refresh: RefreshToken | None = None


def secret_hash(value: str) -> str:
    """Store codes and refresh tokens by SHA-256: they are 256-bit random values."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _successor_key(spent_token: str) -> bytes:
    # Derived from the spent token itself and distinct from its stored hash:
    # a database reader cannot open the sealed response, its holder can.
    return hashlib.sha256(b"authsvc successor\0" + spent_token.encode("ascii")).digest()


def seal_response(spent_token: str, response: dict) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_successor_key(spent_token)).encrypt(nonce, json.dumps(response).encode(), None)


def open_response(spent_token: str, blob: bytes) -> dict | None:
    try:
        return json.loads(AESGCM(_successor_key(spent_token)).decrypt(blob[:12], blob[12:], None))
    except Exception:  # noqa: BLE001 - a blob we cannot open is treated as absent
        return None


class IssuesTokens:
    """Mixin for grants: every token goes through the server's ``issue_tokens``."""

    def generate_token(self, user=None, scope=None, grant_type=None, expires_in=None, include_refresh_token=True):
        return self.server.issue_tokens(self, user=user, scope=scope, include_refresh_token=include_refresh_token)


def issue_tokens(server, grant, *, user, scope, include_refresh_token) -> dict:
    """Mint the access token (and refresh token) for a validated grant request."""
    services = server.services
    request = grant.request
    client = request.client.record
    context = _context_record(request)
    if user is None:
        scope = client_credentials_scope(client, scope)
    scope = scope or ""
    # The grant's own resource (from the authorization request, kept on the code and
    # on every refresh token after it) is what a refresh token carries forward.
    granted_resource = context.resource if context else None
    resource = requested_resource(request.form, granted_resource)
    refreshable = user is not None and include_refresh_token and offers_refresh(client, context.scope)
    proof = proof_of(request)
    if user is not None and request.refresh_token is not None and not refreshable:
        # Issued before this rule, or the client lost first-party since: the grant no longer allows it.
        raise InvalidGrantError("This grant does not allow offline access (scope offline_access).")
    access_token, claims = services.tokens.mint_access_token(
        client_id=client.client_id,
        sub=user.sub if user else client.client_id,
        scope=scope,
        audience=audience_for(services.settings, client, resource),
        sid=context.sid if context else None,
        # A code records the jti and family it will issue when it is consumed.
        jti=getattr(context, "issued_jti", None),
        # RFC 9449 §6.1: a token requested with a DPoP proof is bound to the proof's key.
        cnf={"jkt": proof.jkt} if proof else None,
    )
    token = {
        "access_token": access_token,
        "token_type": "DPoP" if proof else "Bearer",
        "expires_in": services.settings.access_token_ttl,
        "scope": scope,
    }
    refresh = None
    if refreshable:
        plain = secrets.token_urlsafe(32)
        now = services.clock()
        refresh = RefreshToken(
            token_hash=secret_hash(plain),
            family_id=getattr(context, "family_id", None)
            or getattr(context, "issued_family", None)
            or secrets.token_urlsafe(16),
            client_id=client.client_id,
            sub=user.sub,
            # A narrower refresh request narrows this access token, not the grant.
            scope=context.scope,
            issued_at=now,
            expires_at=now + services.settings.refresh_token_ttl,
            auth_time=context.auth_time,
            sid=context.sid,
            resource=granted_resource,
            access_jti=claims["jti"],
            access_exp=claims["exp"],
            # RFC 9449 §5: a public client's refresh token is usable only with the same key.
            dpop_jkt=proof.jkt if proof and client.token_endpoint_auth_method == "none" else None,
        )
        token["refresh_token"] = plain
    request.issued = Issued(claims, refresh)
    return token


def _context_record(request):
    """The code, refresh token or device grant (RFC 8628) this request redeems, if any."""
    for holder in (request.authorization_code, request.refresh_token, request.credential):
        if holder is not None:
            return holder.record
    return None


def client_credentials_scope(client, requested) -> str:
    """The scope a client-credentials token carries: what was asked, each once, within the client's scope."""
    allowed = client.scope.split()
    if not requested:
        return client.scope
    wanted = requested.split()
    if not set(wanted) <= set(allowed):
        raise InvalidScopeError("The requested scope exceeds what the client is allowed.")
    return " ".join(dict.fromkeys(wanted))


def offers_refresh(client, granted_scope: str) -> bool:
    """Whether a user's grant to ``client`` comes with a refresh token.

    OpenID Connect Core §11: a refresh token lets the client act while the user
    is away, so the user must have granted ``offline_access``, and a client that
    is not first-party always shows the consent page for a scope not yet
    consented to. A first-party client (``clients create --first-party``) is the
    operator's own app, whose consent page is skipped anyway: it gets refresh
    tokens without asking for ``offline_access``.
    """
    if "refresh_token" not in client.grant_types:
        return False
    return client.first_party or "offline_access" in (granted_scope or "").split()


def requested_resource(form, granted: str | None) -> str | None:
    """The one ``resource`` a token request names (RFC 8707 §2), or the grant's.

    A code or refresh token bound to a resource at authorization time issues
    tokens for that resource only; one that was not may name any resource
    registered for the client. (A repeated ``resource`` never gets here: the
    token endpoint refuses every repeated parameter.)
    """
    asked = form.get("resource")
    if not asked:
        return granted
    if granted and asked != granted:
        raise InvalidTargetError("The resource is not the one this grant was authorized for.")
    return asked


def audience_for(settings, client, resource: str | None) -> str:
    """RFC 8707: the requested resource when registered for the client, else its default audience.

    The default is the first audience the client was registered with. A client
    with none gets the issuer: such a token is for the issuer's own endpoints
    (userinfo, introspection) and for no resource server.
    """
    if not resource:
        return client.audiences[0] if client.audiences else settings.issuer
    if resource in client.audiences:
        return resource
    raise InvalidTargetError("The resource is not registered for this client.")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

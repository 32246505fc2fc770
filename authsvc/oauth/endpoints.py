"""Revocation (RFC 7009), introspection (RFC 7662) and RP-Initiated Logout,
on Authlib's endpoint classes.

Access tokens are self-contained JWTs: revoking one lists its ``jti`` until
it expires. Refresh tokens live in the store: revoking one revokes its whole
family and the access tokens that family produced.
"""

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint as BaseRevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as BaseIntrospectionEndpoint
from authlib.oidc.rpinitiated import EndSessionEndpoint as BaseEndSessionEndpoint

from ..errors import NotFound
from ..events import security_event
from .issuance import secret_hash

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def own_endpoint_claims(services, token_string: str) -> dict | None:
    """Return the claims of a live access token as the issuer's own endpoints (userinfo) accept it.

    Verifiers allow their own leeway after ``exp``; the issuer's endpoints allow only
    ``endpoint_leeway``, the clock skew between its instances.
    """
    claims = services.tokens.decode_access_token(token_string)
    if claims is None or past_endpoint_leeway(services, claims["exp"]):
        return None
    return claims


def past_endpoint_leeway(services, exp) -> bool:
    """Tell whether a token expiring at ``exp`` is too old for the issuer's own endpoints."""
    return exp + services.settings.endpoint_leeway <= services.clock()


class AccessToken:
    """An access JWT as the endpoints see it."""

    kind = "access_token"

    def __init__(self, claims, revoked: bool, services):
        self.claims = claims
        self.revoked = revoked
        self._services = services

    def check_client(self, client):
        return client.get_client_id() == self.claims["client_id"]

    def is_expired(self):
        # Introspection answers for the issuer: its own small leeway, not the verifiers'.
        return past_endpoint_leeway(self._services, self.claims["exp"])

    def is_revoked(self):
        return self.revoked


class StoredRefreshToken:
    kind = "refresh_token"

    def __init__(self, record, clock):
        self.record = record
        self._clock = clock

    def check_client(self, client):
        return client.get_client_id() == self.record.client_id

    def is_expired(self):
        return self.record.expires_at <= self._clock()

    def is_revoked(self):
        # A spent token is dead to everyone but the rotation's grace window.
        return self.record.revoked_at is not None or self.record.spent_at is not None


def find_token(services, token_string: str, hint: str | None):
    """Look the token up as an access JWT or a stored refresh token, hint first."""
    kinds = ["refresh_token", "access_token"] if hint == "refresh_token" else ["access_token", "refresh_token"]
    for kind in kinds:
        if kind == "access_token":
            claims = services.tokens.decode_access_token(token_string)
            if claims is not None:
                # Revocation still finds a token a verifier would accept (its leeway is wider).
                return AccessToken(claims, services.revocations.is_token_revoked(claims), services)
        else:
            try:
                record = services.store.get_refresh_token(secret_hash(token_string))
            except (NotFound, ValueError):
                continue
            return StoredRefreshToken(record, services.clock)
    return None


class RevocationEndpoint(BaseRevocationEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS + ["none"]

    def query_token(self, token_string, token_type_hint):
        return find_token(self.server.services, token_string, token_type_hint)

    def revoke_token(self, token, request):
        revocations = self.server.services.revocations
        if token.kind == "access_token":
            revocations.revoke_jtis([(token.claims["jti"], token.claims["exp"])])
            claims = token.claims
            security_event(
                "token.revoked", kind=token.kind, client_id=claims["client_id"], sub=claims["sub"], jti=claims["jti"]
            )
        else:
            revocations.revoke_family(token.record.family_id)
            record = token.record
            security_event(
                "token.revoked", kind=token.kind, client_id=record.client_id, sub=record.sub, family_id=record.family_id
            )


class IntrospectionEndpoint(BaseIntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string, token_type_hint):
        return find_token(self.server.services, token_string, token_type_hint)

    def check_permission(self, token, client, request):
        # A client may introspect what was issued to it, and what names it as audience.
        if token.check_client(client):
            return True
        if token.kind == "access_token":
            aud = token.claims.get("aud")
            return client.get_client_id() in (aud if isinstance(aud, list) else [aud])
        return False

    def introspect_token(self, token):
        if token.kind == "access_token":
            payload = {k: v for k, v in token.claims.items() if k in INTROSPECTED_CLAIMS}
            # RFC 9449 §6.2: a bound token's key (cnf.jkt) and type are part of the answer.
            payload["token_type"] = "DPoP" if "cnf" in payload else "Bearer"
            return payload
        record = token.record
        return {
            "client_id": record.client_id,
            "sub": record.sub,
            "scope": record.scope,
            "exp": int(record.expires_at),
            "iat": int(record.issued_at),
            "iss": self.server.services.settings.issuer,
            "token_type": "refresh_token",
        }


INTROSPECTED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "sid", "cnf")


class EndSessionEndpoint(BaseEndSessionEndpoint):
    """RP-Initiated Logout 1.0; the id_token_hint goes through our own PyJWT check."""

    def _validate_id_token_hint(self, id_token_hint):
        claims = self.server.services.tokens.decode_id_token_hint(id_token_hint)
        if claims is None:
            raise InvalidRequestError("The id_token_hint is not an ID token issued here.")
        return claims

    def get_server_jwks(self):
        return self.server.services.keyring.jwks()

    def end_session(self, end_session_request):
        """Ending the browser session is the web layer's job (it owns the cookie)."""

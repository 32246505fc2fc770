"""Grant types: authorization code (+ PKCE S256, + OpenID Connect),
refresh token with rotation, and client credentials, on Authlib's grants.

Authlib drives the protocol; these subclasses only answer its storage hooks
and route every token through ``TokenMinter``, the one signing path.
"""

import logging
import re
import secrets

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.grants import OpenIDCode

from ..errors import NotFound
from ..events import security_event
from ..store import AuthorizationCode
from ..tokens import new_jti
from .dpop import code_bound_to_another_key
from .dpop import proof_of
from .issuance import InvalidTargetError
from .issuance import IssuesTokens
from .issuance import audience_for
from .issuance import secret_hash
from .models import CodeModel

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
# RFC 9449 §10, RFC 7638: base64url (no padding) of a SHA-256 digest.
JKT = re.compile(r"[A-Za-z0-9_-]{43}")
# RFC 7636 §4.1: 43 to 128 unreserved characters.
VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class ClientCredentialsGrant(IssuesTokens, grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class AuthorizationCodeGrant(IssuesTokens, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code, request):
        login = request.user
        payload = request.payload.data
        services = self.server.services
        now = services.clock()
        services.store.create_code(
            AuthorizationCode(
                code_hash=secret_hash(code),
                client_id=request.client.get_client_id(),
                sub=login.user.sub,
                redirect_uri=request.payload.redirect_uri or "",
                scope=request.scope or "",
                expires_at=now + services.settings.code_ttl,
                auth_time=login.auth_time,
                sid=login.sid,
                nonce=payload.get("nonce"),
                code_challenge=payload.get("code_challenge"),
                code_challenge_method=payload.get("code_challenge_method"),
                resource=payload.get("resource"),
                dpop_jkt=payload.get("dpop_jkt"),
            )
        )
        # Back-channel logout: this client now holds the session and is told when it ends.
        services.store.record_session_client(login.sid, request.client.get_client_id(), now)

    def query_authorization_code(self, code, client):
        """Consume the code atomically; a replay revokes what the first exchange issued (RFC 9700 §4.5)."""
        services = self.server.services
        now = services.clock()
        # Chosen before signing and stored with the consumption, so a replay that
        # races this exchange finds what to revoke (RFC 9700 §4.5).
        issue = (new_jti(), int(now) + services.settings.access_token_ttl, secrets.token_urlsafe(16))
        proof = proof_of(self.request)
        record, first_use = services.store.consume_code(
            secret_hash(code), now, issue=issue, dpop_jkt=proof.jkt if proof else None
        )
        if record is None:
            return None
        if not first_use and record.used_at is None:
            # RFC 9449 §10: bound to a key this request holds no proof of; left for that key's holder.
            raise code_bound_to_another_key(record, self.request, client)
        if not first_use:
            security_event(
                "code.reuse_detected",
                logging.WARNING,
                client_id=record.client_id,
                sub=record.sub,
                family_id=record.issued_family,
            )
            if record.issued_jti:
                services.revocations.revoke_jtis([(record.issued_jti, record.issued_exp or 0)])
            if record.issued_family:
                services.revocations.revoke_family(record.issued_family)
            return None
        if record.client_id != client.get_client_id():
            return None
        return CodeModel(record)

    def delete_authorization_code(self, authorization_code):
        """Nothing to do: ``query_authorization_code`` consumed it already."""

    def authenticate_user(self, authorization_code):
        return session_user(self.server, authorization_code.record)

    def validate_authorization_request(self):
        # RFC 6749 §3.1: authorization parameters must not be repeated.
        self.validate_no_multiple_request_parameter(self.request)
        redirect_uri = super().validate_authorization_request()
        # RFC 8707 §2: refuse an unknown resource here, before the user is asked to consent.
        try:
            audience_for(
                self.server.services.settings, self.request.client.record, self.request.payload.data.get("resource")
            )
        except InvalidTargetError as error:
            error.redirect_uri, error.state = redirect_uri, self.request.payload.state
            raise
        # RFC 9449 §10: dpop_jkt is a JWK SHA-256 thumbprint, 43 base64url characters.
        dpop_jkt = self.request.payload.data.get("dpop_jkt")
        if dpop_jkt is not None and not JKT.fullmatch(dpop_jkt):
            raise InvalidRequestError(
                "Invalid 'dpop_jkt' parameter: a JWK SHA-256 thumbprint is 43 base64url characters.",
                redirect_uri=redirect_uri,
                state=self.request.payload.state,
            )
        return redirect_uri


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (RFC 9700 §2.1.1); required for public clients."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        challenge = data.get("code_challenge")
        if not challenge and grant.request.client.is_public:
            raise InvalidRequestError("Public clients must send a code_challenge (PKCE S256).")
        if challenge and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result):
        """RFC 7636 §4.6: any mismatch, missing or malformed verifier is ``invalid_grant``."""
        request = grant.request
        verifier = request.form.get("code_verifier")
        challenge = request.authorization_code.code_challenge
        if not challenge:
            if verifier:
                # RFC 9700 §4.8.2: a verifier without a challenge is a downgrade attempt.
                raise InvalidGrantError("code_verifier sent, but the authorization request had no code_challenge.")
            if request.client.is_public:
                raise InvalidGrantError("Public clients must use PKCE.")
            return
        if not verifier or not 43 <= len(verifier) <= 128 or not set(verifier) <= VERIFIER_CHARS:
            raise InvalidGrantError("Missing or malformed code_verifier.")
        if create_s256_code_challenge(verifier) != challenge:
            raise InvalidGrantError("Code challenge failed.")


class OpenIDConnect(OpenIDCode):
    """Adds the ID token; signed by ``TokenMinter`` rather than Authlib's joserfc path."""

    def exists_nonce(self, nonce, request):
        # Codes are single-use and bound to the client, so a nonce cannot be replayed through them.
        return False

    def generate_user_info(self, user, scope):
        from .claims import user_claims

        return user_claims(user, scope)

    def process_token(self, grant, response):
        _, token, _ = response
        if "openid" not in (token.get("scope") or "").split():
            return token
        code = grant.request.authorization_code.record
        token["id_token"] = grant.server.mint_id_token(
            grant.request.client, grant.request.user, code.scope, code.auth_time, code.sid, code.nonce, token
        )
        return token


def rotate_family_user(server, record):
    """Return the user of a refresh token, or None when it may no longer be used."""
    try:
        server.services.store.get_client(record.client_id)
    except NotFound:
        return None
    return session_user(server, record)


def session_user(server, record):
    """Return the active user of a code or refresh token whose browser session is still on.

    A code redeemed, or a refresh spent, after its session was logged out (or
    its user revoked) would otherwise mint tokens the revocation list never
    names: the logout revoked only what existed at that moment.
    """
    ended = server.services.revocations.is_session_ended
    if record.sid and ended(record.sid, sub=record.sub, started=record.auth_time):
        return None
    return server.load_active_user(record.sub)

"""The authorization server: Authlib's Flask integration, wired to our store,
key ring and token minter.
"""

from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Request
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.requests import OAuth2Request
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import request as flask_request

from ..errors import NotFound
from ..store.client_cache import ClientCache
from .client_auth import authenticate_basic
from .client_auth import authenticate_post
from .client_keys import ClientKeys
from .device import DeviceAuthorizationEndpoint
from .device import DeviceCodeGrant
from .dpop import DPoP
from .endpoints import EndSessionEndpoint
from .endpoints import IntrospectionEndpoint
from .endpoints import RevocationEndpoint
from .grants import AuthorizationCodeGrant
from .grants import ClientCredentialsGrant
from .grants import OpenIDConnect
from .grants import S256CodeChallenge
from .issuance import issue_tokens
from .models import ClientModel
from .private_key_jwt import PrivateKeyJWT
from .refresh import RefreshTokenGrant

NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]


class IssuerRequest(FlaskOAuth2Request):
    """An OAuth request whose URI is built from the configured issuer.

    The Host and X-Forwarded-* headers are the client's to choose, so nothing
    in the protocol may depend on them (SECURITY.md B.35).
    """

    def __init__(self, request, issuer: str):
        # Not super().__init__(request): Authlib would first check request.url for
        # https, which behind a TLS-terminating proxy is http://<Host> and fails every
        # request. The transport is the configured issuer's (https, or loopback http).
        OAuth2Request.__init__(
            self, method=request.method, uri=issuer + request.full_path.rstrip("?"), headers=request.headers
        )
        self._request = request
        self.payload = FlaskOAuth2Payload(request)


class Issuer(IssuerParameter):
    def __init__(self, issuer: str):
        self.issuer = issuer

    def get_issuer(self):
        return self.issuer


class AuthorizationServer(FlaskAuthorizationServer):
    def __init__(self, services):
        super().__init__()
        self.services = services
        # Every token request authenticates a client: read from memory, at most half a second old.
        self.clients = ClientCache(services.store)
        self.register_token_generator("default", self._unused_generator)
        self.register_client_auth_method("client_secret_basic", authenticate_basic)
        self.register_client_auth_method("client_secret_post", authenticate_post)
        self.client_keys = ClientKeys()
        self.register_client_auth_method("private_key_jwt", PrivateKeyJWT(self))
        self.register_grant(
            AuthorizationCodeGrant, [S256CodeChallenge(required=True), OpenIDConnect(require_nonce=False)]
        )
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(DeviceCodeGrant)
        self.register_endpoint(RevocationEndpoint)
        self.register_endpoint(IntrospectionEndpoint)
        self.register_endpoint(EndSessionEndpoint)
        self.register_endpoint(DeviceAuthorizationEndpoint)
        self.register_extension(Issuer(services.settings.issuer))
        self.dpop = DPoP(services)

    @staticmethod
    def _unused_generator(**kwargs):
        raise RuntimeError("every grant issues through IssuesTokens")

    def get_token_grant(self, request):
        # RFC 6749 §5.2: a missing parameter is invalid_request, not an unsupported grant type.
        if not request.payload.grant_type:
            raise InvalidRequestError("Missing 'grant_type' parameter.")
        return super().get_token_grant(request)

    def create_oauth2_request(self, request):
        if isinstance(request, IssuerRequest):
            return request
        return IssuerRequest(flask_request, self.services.settings.issuer)

    def create_token_response(self, request=None):
        # RFC 9449 §4.3, §8: the DPoP proof is checked before the grant runs, so a
        # refused proof (or a nonce to fetch first) spends no authorization code.
        request = self.create_oauth2_request(request)
        try:
            request.dpop = self.dpop.check_token_request(request)
        except OAuth2Error as error:
            response = self.handle_error_response(request, error)
        else:
            response = super().create_token_response(request)
        if "DPoP-Nonce" not in response.headers:
            response.headers.extend(self.dpop.response_headers())
        return response

    def authenticate_client(self, request, methods, endpoint="token"):
        # private_key_jwt is good wherever a client secret is (token, revocation, introspection,
        # PAR), and is tried first so that an assertion sent with other credentials is refused.
        if "client_secret_basic" in methods and "private_key_jwt" not in methods:
            methods = ["private_key_jwt", *methods]
        client = super().authenticate_client(request, methods, endpoint)
        if endpoint == "token":
            self.dpop.require_for(client, request)
        return client

    def query_client(self, client_id):
        try:
            return ClientModel(self.clients.get(client_id))
        except (NotFound, ValueError):
            return None

    def issue_tokens(self, grant, **kwargs) -> dict:
        return issue_tokens(self, grant, **kwargs)

    def save_token(self, token, request):
        issued = request.issued
        store = self.services.store
        code = request.authorization_code
        if code is not None:
            if issued.refresh is not None:
                store.create_refresh_token(issued.refresh)
            store.record_code_issue(
                code.record.code_hash,
                issued.claims["jti"],
                issued.claims["exp"],
                issued.refresh.family_id if issued.refresh else None,
            )
            # A replay racing this exchange listed our jti, maybe before the refresh
            # token existed to be revoked with its family: finish the job.
            if issued.refresh is not None and self.services.revocations.is_token_revoked(issued.claims):
                self.services.revocations.revoke_family(issued.refresh.family_id)

    def load_active_user(self, sub: str):
        try:
            user = self.services.store.get_user(sub)
        except NotFound:
            return None
        return None if user.disabled else user

    def mint_id_token(self, client, user, scope, auth_time, sid, nonce, token) -> str:
        from .claims import user_claims

        record = client.record
        return self.services.tokens.mint_id_token(
            client_id=record.client_id,
            alg=record.id_token_signed_response_alg,
            sub=user.sub,
            auth_time=auth_time,
            sid=sid,
            nonce=nonce,
            access_token=token.get("access_token"),
            extra=user_claims(user, scope),
        )

    def handle_response(self, status_code, payload, headers):
        headers = [(k, v) for k, v in headers if k.lower() not in ("cache-control", "pragma")] + NO_STORE
        if status_code == 401 and not any(k.lower() == "www-authenticate" for k, _ in headers):
            headers.append(("WWW-Authenticate", 'Basic realm="authsvc"'))
        return super().handle_response(status_code, payload, headers)

    def handle_error_response(self, request, error):
        # RFC 6749 §5.2 allows 401 for every client-authentication failure; one
        # status for all of them tells an attacker nothing about which part failed.
        if isinstance(error, InvalidClientError):
            error.status_code = 401
        return super().handle_error_response(request, error)

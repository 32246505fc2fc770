"""Records the store keeps: plain frozen dataclasses, no behaviour.

Times are unix seconds (float). Secrets never appear here in clear: codes,
refresh tokens and client secrets are stored as SHA-256 hex digests.
"""

from dataclasses import dataclass
from dataclasses import field


@dataclass(frozen=True)
class User:
    sub: str
    username: str
    password_hash: str
    email: str | None = None
    disabled: bool = False
    created_at: float = 0.0


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    secret_hash: str | None = None
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("client_credentials",)
    scope: str = ""
    token_endpoint_auth_method: str = "client_secret_basic"
    first_party: bool = False
    id_token_signed_response_alg: str = "RS256"
    # Access-token audiences the client may ask for; the first is the default (RFC 8707).
    audiences: tuple[str, ...] = ()
    # Browser origins answered with CORS headers; never "*".
    allowed_origins: tuple[str, ...] = ()
    # RFC 9449: every token request must carry a DPoP proof.
    dpop_bound: bool = False
    # private_key_jwt: the client's public keys (a JSON JWKS document) or where to fetch them.
    jwks: str | None = None
    jwks_uri: str | None = None
    # RFC 9126: only pushed authorization requests are accepted.
    require_par: bool = False
    backchannel_logout_uri: str | None = None
    created_at: float = 0.0


@dataclass(frozen=True)
class AuthorizationCode:
    code_hash: str
    client_id: str
    sub: str
    redirect_uri: str
    scope: str
    expires_at: float
    auth_time: float
    sid: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    resource: str | None = None
    used_at: float | None = None
    # What the first exchange issued, so a replay can revoke it (RFC 9700 §4.5).
    issued_jti: str | None = None
    issued_exp: float | None = None
    issued_family: str | None = None


@dataclass(frozen=True)
class RefreshToken:
    token_hash: str
    family_id: str
    client_id: str
    sub: str
    scope: str
    issued_at: float
    expires_at: float
    auth_time: float
    sid: str | None = None
    resource: str | None = None
    # The access token issued together with this refresh token.
    access_jti: str | None = None
    access_exp: float | None = None
    spent_at: float | None = None
    revoked_at: float | None = None
    # The token response that replaced this one, encrypted under a key derived
    # from this (spent) token, so only its holder can read it in the grace window.
    successor_blob: bytes | None = None
    successor_hash: str | None = None
    # RFC 9449 §5: the JWK thumbprint a public client's refresh token is bound to.
    dpop_jkt: str | None = None


@dataclass(frozen=True)
class Revocation:
    """One entry of the revocation list; ``version`` orders them across instances."""

    version: int
    kind: str  # jti | sid | sub | client_id
    value: str
    exp: float
    before: float | None = None


@dataclass(frozen=True)
class Consent:
    sub: str
    client_id: str
    scope: str
    granted_at: float = 0.0
    redirect_uris: tuple[str, ...] = ()


@dataclass(frozen=True)
class RevocationPage:
    """What changed in the revocation list after a version."""

    version: int
    entries: list[Revocation] = field(default_factory=list)
    full: bool = True

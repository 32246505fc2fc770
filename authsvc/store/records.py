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
    # RFC 9449 §10: the thumbprint of the DPoP key whose proof must come with the exchange.
    dpop_jkt: str | None = None


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


@dataclass(frozen=True)
class DeviceCode:
    """An RFC 8628 device authorization grant; the device code itself is kept only as its hash."""

    device_code_hash: str
    user_code: str  # canonical: 8 letters, no dash
    client_id: str
    scope: str
    expires_at: float
    interval: int
    status: str = "pending"  # pending | approved | denied | consumed
    resource: str | None = None
    last_polled_at: float | None = None
    # Who decided, from which browser session (set on approval or denial).
    sub: str | None = None
    auth_time: float | None = None
    sid: str | None = None


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser, for the account page and back-channel logout (the cookie stays the credential)."""

    sid: str
    sub: str
    created_at: float
    last_seen_at: float
    expires_at: float
    user_agent: str = ""
    address: str = ""
    ended_at: float | None = None


@dataclass(frozen=True)
class LogoutDelivery:
    """One back-channel logout token owed to one client (OpenID Connect Back-Channel Logout 1.0).

    ``logout_claims`` holds the claims that stay the same on every attempt
    (``jti``, ``sid``, ``sub``) as JSON; the token is signed when it is sent.
    ``claimed_until`` is the lease of the instance sending it, and its value
    identifies that claim.
    """

    id: int
    client_id: str
    uri: str
    logout_claims: str
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    claimed_until: float | None = None
    delivered_at: float | None = None
    last_error: str | None = None

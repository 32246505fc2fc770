"""Users and clients: the rules shared by the CLI and the web pages.

Passwords are hashed with argon2id. Client secrets are 256-bit random values,
so a single SHA-256 is enough to store them (nothing to brute-force) and the
comparison is constant-time.
"""

import hashlib
import hmac
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError

from .errors import NotFound
from .store import Client
from .store import User

MAX_PASSWORD_BYTES = 1024
MAX_USERNAME_CHARS = 150
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")

# argon2-cffi's defaults are argon2id, m=64 MiB, t=3, p=4: above the OWASP floor.
_hasher = PasswordHasher()
# Verified when the username is unknown, so every failed login costs the same.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def normalize_username(username: str) -> str:
    """Return the form usernames are shown and compared in (NFKC, trimmed)."""
    return unicodedata.normalize("NFKC", username).strip()


def validate_username(username: str) -> str:
    name = normalize_username(username)
    if not name or len(name) > MAX_USERNAME_CHARS:
        raise ValueError(f"username must be 1 to {MAX_USERNAME_CHARS} characters")
    if any(unicodedata.category(c).startswith("C") or c.isspace() for c in name):
        raise ValueError("username must not contain spaces or control characters")
    return name


def validate_password(password: str) -> str:
    if not password:
        raise ValueError("password must not be empty")
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password must be at most {MAX_PASSWORD_BYTES} bytes")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(validate_password(password))


def new_user(username: str, password: str, email: str | None, now: float) -> User:
    """Build a user record with a stable random ``sub``."""
    return User(
        sub="u_" + secrets.token_urlsafe(16),
        username=validate_username(username),
        password_hash=hash_password(password),
        email=email or None,
        created_at=now,
    )


def authenticate(store, username: str, password: str) -> User | None:
    """Return the user when the password matches and the account is enabled.

    Unknown users still cost one argon2 verification, so the answer time does
    not tell whether an account exists.
    """
    try:
        user = store.get_user_by_username(normalize_username(username))
    except (NotFound, ValueError):
        user = None
    stored = user.password_hash if user else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
        matched = user is not None
    except (VerificationError, InvalidHashError):
        matched = False
    if not matched or user.disabled:
        return None
    if _hasher.check_needs_rehash(stored):
        user = store.update_user(user.sub, lambda u: _rehashed(u, password))
    return user


def _rehashed(user: User, password: str) -> User:
    from dataclasses import replace

    return replace(user, password_hash=_hasher.hash(password))


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_client_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def check_client_secret(client: Client, secret: str | None) -> bool:
    """Compare in constant time; a client without a secret never matches."""
    if not client.secret_hash or not secret:
        return False
    return hmac.compare_digest(client.secret_hash, hash_client_secret(secret))


def new_client(
    name: str,
    *,
    now: float,
    redirect_uris=(),
    post_logout_redirect_uris=(),
    grant_types=(),
    scope: str = "",
    public: bool = False,
    auth_method: str | None = None,
    first_party: bool = False,
    id_token_alg: str = "RS256",
) -> tuple[Client, str | None]:
    """Build a client record and its one-time clear secret (None for public clients)."""
    if not name or len(name) > 200:
        raise ValueError("client name must be 1 to 200 characters")
    method = "none" if public else (auth_method or "client_secret_basic")
    if method not in AUTH_METHODS:
        raise ValueError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
    if public != (method == "none"):
        raise ValueError("auth method 'none' is for public clients only (--public)")
    grants = tuple(grant_types) or (
        ("authorization_code", "refresh_token") if redirect_uris else ("client_credentials",)
    )
    for grant in grants:
        if grant not in GRANT_TYPES:
            raise ValueError(f"grant type must be one of {', '.join(GRANT_TYPES)}")
    if public and "client_credentials" in grants:
        raise ValueError("a public client cannot use client_credentials")
    if "authorization_code" in grants and not redirect_uris:
        raise ValueError("authorization_code needs at least one --redirect-uri")
    for uri in tuple(redirect_uris) + tuple(post_logout_redirect_uris):
        validate_redirect_uri(uri)
    secret = None if public else new_client_secret()
    client = Client(
        client_id="c_" + secrets.token_urlsafe(12),
        name=name,
        secret_hash=hash_client_secret(secret) if secret else None,
        redirect_uris=tuple(redirect_uris),
        post_logout_redirect_uris=tuple(post_logout_redirect_uris),
        grant_types=grants,
        scope=" ".join(scope.split()),
        token_endpoint_auth_method=method,
        first_party=first_party,
        id_token_signed_response_alg=id_token_alg,
        created_at=now,
    )
    return client, secret


def validate_redirect_uri(uri: str) -> str:
    """Accept absolute https URIs, http on loopback, and private-use schemes (RFC 8252)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        raise ValueError(f"redirect URI {uri!r} is not a URI") from None
    scheme = parts.scheme.lower()
    if "#" in uri or not scheme:
        raise ValueError(f"redirect URI {uri!r} must be absolute and have no fragment")
    if scheme in ("javascript", "data", "vbscript", "file"):
        raise ValueError(f"redirect URI scheme {scheme!r} is not allowed")
    if scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"redirect URI {uri!r}: http is allowed only on loopback")
    if scheme in ("http", "https") and not parts.hostname:
        raise ValueError(f"redirect URI {uri!r} has no host")
    return uri

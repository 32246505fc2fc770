"""Users and clients: the rules shared by the CLI and the web pages.

Passwords are hashed with argon2id. Client secrets are 256-bit random values,
so a single SHA-256 is enough to store them (nothing to brute-force) and the
comparison is constant-time.
"""

import hashlib
import hmac
import ipaddress
import re
import secrets
import unicodedata
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError

from .config import SIGNING_ALGS
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
    allowed_origins=(),
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
    if id_token_alg not in SIGNING_ALGS:
        raise ValueError(f"ID token algorithm must be one of {', '.join(SIGNING_ALGS)}")
    origins = tuple(dict.fromkeys(validate_origin(origin) for origin in allowed_origins))
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
        allowed_origins=origins,
        created_at=now,
    )
    return client, secret


def validate_redirect_uri(uri: str) -> str:
    """Accept absolute https URIs, http on a loopback IP literal, and private-use schemes (RFC 8252).

    ``http://localhost`` is refused (RFC 8252 §8.3): the name may resolve to
    another interface or host, and a program listening there would receive
    the code; ``127.0.0.1`` and ``[::1]`` cannot be redirected that way.
    """
    parts = _absolute_uri(uri, "redirect URI")
    if parts.scheme.lower() == "http":
        if parts.hostname == "localhost":
            port = f":{parts.port}" if parts.port else ""
            raise ValueError(
                f"redirect URI {uri!r}: use http://127.0.0.1{port}/… or http://[::1]{port}/…, "
                "not localhost (RFC 8252 §8.3)"
            )
        if parts.hostname not in ("127.0.0.1", "::1"):
            raise ValueError(f"redirect URI {uri!r}: http is allowed only on 127.0.0.1 or [::1]")
    return uri


def validate_audience(uri: str) -> str:
    """Accept an absolute https URI, or http on loopback, as an access-token audience."""
    parts = _absolute_uri(uri, "audience")
    if parts.scheme.lower() == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"audience {uri!r}: http is allowed only on loopback")
    return uri


def _absolute_uri(uri: str, what: str):
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        raise ValueError(f"{what} {uri!r} is not a URI") from None
    scheme = parts.scheme.lower()
    if "#" in uri or not scheme:
        raise ValueError(f"{what} {uri!r} must be absolute and have no fragment")
    if scheme in ("javascript", "data", "vbscript", "file"):
        raise ValueError(f"{what} scheme {scheme!r} is not allowed")
    if scheme in ("http", "https") and not parts.hostname:
        raise ValueError(f"{what} {uri!r} has no host")
    return parts


# A DNS name in its ASCII (punycode) form, as browsers put it in ``Origin``.
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")
_DEFAULT_PORTS = {"https": 443, "http": 80}


def validate_origin(origin: str) -> str:
    """Return a browser origin for CORS in the form browsers send it (RFC 6454 §6.2).

    ``scheme://host[:port]`` and nothing else: https, or http on loopback
    (``localhost`` included: an origin names the page a browser loaded, it
    delivers nothing to a listener). Lower-cased, default port dropped, so a
    plain string comparison with the ``Origin`` header decides. Never ``*``:
    each origin is named.
    """
    shown = repr(origin)
    if origin.strip() in ("*", "null"):
        raise ValueError(f"allowed origin {shown}: name each origin (https://app.example), never '*' or 'null'")
    shape = f"allowed origin {shown} must be scheme://host[:port] with scheme https or http"
    if any(c.isspace() or not c.isprintable() for c in origin):
        raise ValueError(shape)
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        raise ValueError(shape) from None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in _DEFAULT_PORTS or not parts.netloc or parts.username is not None or parts.password is not None:
        raise ValueError(shape)
    if parts.path or parts.query or parts.fragment or "?" in origin or "#" in origin:
        raise ValueError(f"allowed origin {shown} must be scheme://host[:port], with no path (not even '/')")
    if ":" in host:
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"allowed origin {shown} has an invalid IPv6 address") from None
        netloc = f"[{ip.compressed}]"
    elif _HOSTNAME.fullmatch(host):
        netloc = host
    else:
        raise ValueError(f"allowed origin {shown}: the host must be a DNS name (punycode) or an IP address")
    if scheme == "http" and netloc not in ("127.0.0.1", "[::1]", "localhost"):
        raise ValueError(f"allowed origin {shown}: http is allowed only on loopback")
    if port == 0:
        raise ValueError(f"allowed origin {shown} has port 0")
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}"

"""Users and clients: the rules shared by the CLI and the web pages.

Passwords are hashed with argon2id. Client secrets are 256-bit random values,
so a single SHA-256 is enough to store them (nothing to brute-force) and the
comparison is constant-time.
"""

import functools
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import unicodedata
from dataclasses import replace
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2 import Type
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from .config import SIGNING_ALGS
from .config import Settings
from .errors import NotFound
from .store import Client
from .store import User

MAX_PASSWORD_BYTES = 1024
MAX_USERNAME_CHARS = 150
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
# The device grant (RFC 8628) needs no redirect URI: the user approves at /device.
GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code",
)
# Password hashing parameters when no settings are given: the shipped defaults.
_SHIPPED = Settings()


def password_hasher(settings: Settings | None = None) -> PasswordHasher:
    """The argon2id hasher of ``settings`` (AUTHSVC_ARGON2_*; default: OWASP's minimum profile)."""
    settings = settings or _SHIPPED
    return _hasher_for(settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism)


@functools.cache
def _hasher_for(memory_kib: int, time_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID)


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """Verified when the username is unknown, with the same parameters, so every failed login costs the same."""
    return hasher.hash(secrets.token_urlsafe(16))


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


def hash_password(password: str, settings: Settings | None = None) -> str:
    return password_hasher(settings).hash(validate_password(password))


def new_user(username: str, password: str, email: str | None, now: float, settings: Settings | None = None) -> User:
    """Build a user record with a stable random ``sub``."""
    return User(
        sub="u_" + secrets.token_urlsafe(16),
        username=validate_username(username),
        password_hash=hash_password(password, settings),
        email=email or None,
        created_at=now,
    )


def authenticate(store, username: str, password: str, settings: Settings | None = None) -> User | None:
    """Return the user when the password matches and the account is enabled.

    Unknown users still cost one argon2 verification with the configured
    parameters, so the answer time does not tell whether an account exists. A
    hash made with other parameters than ``settings``' is replaced on this
    successful login: raising (or lowering) AUTHSVC_ARGON2_* reaches every
    account as its user next signs in.
    """
    hasher = password_hasher(settings)
    try:
        user = store.get_user_by_username(normalize_username(username))
    except (NotFound, ValueError):
        user = None
    stored = user.password_hash if user else _dummy_hash(hasher)
    try:
        hasher.verify(stored, password)
        matched = user is not None
    except (VerificationError, InvalidHashError):
        matched = False
    if not matched or user.disabled:
        return None
    if hasher.check_needs_rehash(stored):
        rehashed = hasher.hash(password)
        # Only over the hash just verified: a password changed meanwhile is not undone.
        user = store.update_user(
            user.sub, lambda u: replace(u, password_hash=rehashed) if u.password_hash == stored else u
        )
    return user


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
    jwks: str | None = None,
    jwks_uri: str | None = None,
    backchannel_logout_uri: str | None = None,
) -> tuple[Client, str | None]:
    """Build a client record and its one-time clear secret (None for public and private_key_jwt clients)."""
    if not name or len(name) > 200:
        raise ValueError("client name must be 1 to 200 characters")
    keyed = "private_key_jwt" if jwks or jwks_uri else "client_secret_basic"
    method = "none" if public else (auth_method or keyed)
    if method not in AUTH_METHODS:
        raise ValueError(f"auth method must be one of {', '.join(AUTH_METHODS)}")
    if public != (method == "none"):
        raise ValueError("auth method 'none' is for public clients only (--public)")
    if jwks and jwks_uri:
        raise ValueError("give the client's keys once: --jwks-file or --jwks-uri, not both")
    if method == "private_key_jwt" and not (jwks or jwks_uri):
        raise ValueError("auth method private_key_jwt needs the client's public keys: --jwks-file or --jwks-uri")
    if method != "private_key_jwt" and (jwks or jwks_uri):
        raise ValueError("--jwks-file and --jwks-uri are for auth method private_key_jwt only")
    if jwks is not None:
        jwks = validate_jwks(jwks)
    if jwks_uri is not None:
        jwks_uri = validate_jwks_uri(jwks_uri)
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
    if backchannel_logout_uri is not None:
        backchannel_logout_uri = validate_backchannel_logout_uri(backchannel_logout_uri)
    # A private_key_jwt client proves itself with its key: a secret would be a second, weaker way in.
    secret = None if public or method == "private_key_jwt" else new_client_secret()
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
        jwks=jwks,
        jwks_uri=jwks_uri,
        backchannel_logout_uri=backchannel_logout_uri,
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


MAX_CLIENT_KEYS = 20
MAX_JWKS_BYTES = 64 * 1024
# What a private_key_jwt client may sign its assertions with: asymmetric only, never HS* or none.
CLIENT_ASSERTION_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
# A JWK holding any of these is a private (or symmetric) key: never registered.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def validate_jwks(text: str) -> str:
    """Return a client's JWK Set (private_key_jwt) as compact JSON; ValueError names what is wrong.

    Public RSA (2048 bits or more), EC (P-256, P-384, P-521) and OKP (Ed25519)
    signing keys only: a private or symmetric key here would be a shared
    secret again, which is what private_key_jwt exists to avoid.
    """
    try:
        doc = json.loads(text)
    except ValueError:
        raise ValueError("JWK Set is not valid JSON") from None
    keys = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ValueError('JWK Set must be a JSON object with a non-empty "keys" array')
    if len(keys) > MAX_CLIENT_KEYS:
        raise ValueError(f"JWK Set has more than {MAX_CLIENT_KEYS} keys")
    kids = [jwk.get("kid") for jwk in keys if isinstance(jwk, dict)]
    if len(keys) > 1 and (None in kids or len(set(map(str, kids))) != len(keys)):
        raise ValueError('every key of a JWK Set with several keys needs its own "kid"')
    for index, jwk in enumerate(keys):
        _check_public_jwk(jwk, f"key {index + 1}")
    return json.dumps({"keys": keys}, separators=(",", ":"), sort_keys=True)


def _check_public_jwk(jwk, name: str) -> None:
    if not isinstance(jwk, dict):
        raise ValueError(f"{name} is not a JSON object")
    if jwk.get("kty") not in ("RSA", "EC", "OKP"):
        raise ValueError(f"{name}: kty must be RSA, EC or OKP (asymmetric)")
    if any(member in jwk for member in _PRIVATE_MEMBERS):
        raise ValueError(f"{name} holds private key material: register the public key only")
    if jwk.get("use", "sig") != "sig":
        raise ValueError(f'{name}: "use" must be "sig"')
    if jwk.get("kty") == "OKP" and jwk.get("crv") != "Ed25519":
        raise ValueError(f"{name}: OKP keys must be Ed25519")
    alg = jwk.get("alg")
    if alg is not None and alg not in CLIENT_ASSERTION_ALGS:
        raise ValueError(f"{name}: alg must be one of {', '.join(CLIENT_ASSERTION_ALGS)}")
    try:
        key = PyJWK(jwk)
    except (PyJWTError, ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{name} is not a usable public key ({error})") from None
    if jwk["kty"] == "RSA" and key.key.key_size < 2048:
        raise ValueError(f"{name}: RSA keys must have at least 2048 bits")


def validate_jwks_uri(uri: str) -> str:
    """Accept an https URL, or http on loopback, where a client publishes its JWK Set."""
    parts = _absolute_uri(uri, "JWKS URI")
    scheme = parts.scheme.lower()
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if scheme != "https" and not (scheme == "http" and loopback):
        raise ValueError(f"JWKS URI {uri!r}: https only (http on loopback)")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"JWKS URI {uri!r} must not carry credentials")
    return uri


def validate_backchannel_logout_uri(uri: str) -> str:
    """Accept https, or http on a loopback IP literal, with no fragment (Back-Channel Logout 1.0 §2.2).

    The issuer POSTs logout tokens there itself: ``localhost`` is refused as for
    redirect URIs, since the name may resolve somewhere else.
    """
    parts = _absolute_uri(uri, "back-channel logout URI")
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and parts.hostname in ("127.0.0.1", "::1")):
        raise ValueError(f"back-channel logout URI {uri!r}: https only (http on 127.0.0.1 or [::1])")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"back-channel logout URI {uri!r} must not carry credentials")
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

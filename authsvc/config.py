"""Settings read once from ``AUTHSVC_*`` environment variables.

Every variable is optional (defaults per CONTRACT.md). Each value is parsed
with its own type and checked at start, so a typo stops start-up with one
line naming the variable instead of failing later on a request.
"""

import base64
import os
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from dataclasses import replace
from urllib.parse import urlsplit

from .errors import ConfigError

SIGNING_ALGS = ("RS256", "ES256", "EdDSA")
KEY_STORES = ("files", "database")
LOG_FORMATS = ("text", "json")
# OWASP Password Storage Cheat Sheet, argon2id minimum: m=19 MiB, t=2, p=1. Ceilings keep one login
# from taking the machine (memory per concurrent login, CPU per attempt).
ARGON2_FLOOR = {"argon2_memory_kib": 19456, "argon2_time_cost": 2, "argon2_parallelism": 1}
ARGON2_CEILING = {"argon2_memory_kib": 1048576, "argon2_time_cost": 20, "argon2_parallelism": 16}


@dataclass(frozen=True)
class Settings:
    issuer: str = "http://127.0.0.1:8000"
    database_url: str = "sqlite:///instance/authsvc.db"
    redis_url: str | None = None
    keys_dir: str = "keys"
    # Where the key ring lives: "files" (keys_dir) or "database" (the shared store, private keys encrypted).
    key_store: str = "files"
    # 32-byte keys that encrypt private keys in the database ring: the first encrypts, any decrypts.
    # Never in repr, logs or error messages.
    key_encryption_key: tuple[bytes, ...] = field(default=(), repr=False)
    bind: str = "127.0.0.1:8000"
    signing_alg: str = "RS256"
    access_token_ttl: int = 600
    id_token_ttl: int = 600
    refresh_token_ttl: int = 1209600
    # CIDRs of reverse proxies whose X-Forwarded-For / X-Request-Id are believed; empty: the socket peer.
    trusted_proxies: tuple[str, ...] = ()
    # Where /metrics is served: its own HOST:PORT, or "" for the main bind behind metrics_token; off with neither.
    metrics_bind: str = ""
    metrics_token: str | None = None
    # Clock skew the issuer's own endpoints (userinfo, introspection) allow after exp.
    endpoint_leeway: int = 5
    # RFC 9449 §8: the token endpoint asks every DPoP proof for a server nonce (DPoP-Nonce).
    dpop_nonce_required: bool = False
    # "text" (one line per record) or "json" (one JSON object per line), for app and access logs alike.
    log_format: str = "text"
    # argon2id cost of password hashes; OWASP's minimum profile by default, and never below it.
    argon2_memory_kib: int = ARGON2_FLOOR["argon2_memory_kib"]
    argon2_time_cost: int = ARGON2_FLOOR["argon2_time_cost"]
    argon2_parallelism: int = ARGON2_FLOOR["argon2_parallelism"]
    # Not in the environment: fixed by the protocol or by our security choices.
    code_ttl: int = 60
    # A refresh token just spent may be presented again for this long (two tabs, a lost answer).
    refresh_grace: int = 5
    leeway: int = 60
    # Moving windows: per username a temporary lock, per client address a throttle (429).
    login_attempts_per_user: int = 10
    login_attempts_per_address: int = 50
    login_window: int = 300
    login_address_window: int = 60
    session_ttl: int = 86400

    @classmethod
    def from_env(cls, environ=None, **overrides) -> "Settings":
        """Build settings from ``AUTHSVC_*`` variables, then apply ``overrides``."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, parse in _ENV.items():
            raw = environ.get("AUTHSVC_" + name.upper())
            if raw is None or raw == "":
                continue
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                raise ConfigError(f"AUTHSVC_{name.upper()}: {exc}") from None
        return cls(**values).with_overrides(**overrides)

    def with_overrides(self, **overrides) -> "Settings":
        """Return a copy with ``overrides`` applied and everything validated."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        settings = replace(self, **overrides)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid setting."""
        _check_issuer(self.issuer)
        _check_bind(self.bind)
        if self.signing_alg not in SIGNING_ALGS:
            raise ConfigError(f"AUTHSVC_SIGNING_ALG: {self.signing_alg!r} is not one of {', '.join(SIGNING_ALGS)}")
        if not self.database_url.startswith(("sqlite:", "postgresql")):
            raise ConfigError("AUTHSVC_DATABASE_URL: use sqlite:///… or postgresql+psycopg://…")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("AUTHSVC_REDIS_URL: use redis://host:port/db")
        if not 0 <= self.endpoint_leeway <= 15:
            raise ConfigError(f"AUTHSVC_ENDPOINT_LEEWAY: {self.endpoint_leeway} is out of range (0 to 15 s)")
        if self.metrics_bind:
            _check_bind(self.metrics_bind, "AUTHSVC_METRICS_BIND")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"AUTHSVC_LOG_FORMAT: {self.log_format!r} is not one of {', '.join(LOG_FORMATS)}")
        if self.key_store not in KEY_STORES:
            raise ConfigError(f"AUTHSVC_KEY_STORE: {self.key_store!r} is not one of {', '.join(KEY_STORES)}")
        if self.key_store == "database" and not self.key_encryption_key:
            raise ConfigError("AUTHSVC_KEY_ENCRYPTION_KEY: required with AUTHSVC_KEY_STORE=database")
        if any(not isinstance(kek, bytes) or len(kek) != 32 for kek in self.key_encryption_key):
            raise ConfigError("AUTHSVC_KEY_ENCRYPTION_KEY: each value must be 32 bytes")
        for name in ("login_attempts_per_user", "login_attempts_per_address", "login_window", "login_address_window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1")
        for name, floor in ARGON2_FLOOR.items():
            value = getattr(self, name)
            if not floor <= value <= ARGON2_CEILING[name]:
                raise ConfigError(
                    f"AUTHSVC_{name.upper()}: {value} is out of range ({floor} to {ARGON2_CEILING[name]}; "
                    "the floor is OWASP's minimum for argon2id)"
                )
        for name in ("access_token_ttl", "id_token_ttl", "refresh_token_ttl"):
            value = getattr(self, name)
            if not 1 <= value <= 365 * 86400:
                raise ConfigError(f"AUTHSVC_{name.upper()}: {value} is out of range (1 s to 365 days)")

    @property
    def secure_cookies(self) -> bool:
        return self.issuer.startswith("https://")

    @property
    def longest_token_ttl(self) -> int:
        """Seconds a signing key must stay published after it stops signing."""
        return max(self.access_token_ttl, self.id_token_ttl) + self.leeway


def _seconds(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a whole number of seconds") from None
    return value


def _whole_number(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a whole number") from None


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{raw!r} is not true or false")
    return value in ("true", "1", "yes")


def _text(raw: str) -> str:
    return raw.strip()


def _encryption_keys(raw: str) -> tuple[bytes, ...]:
    # The value is a secret: no message here may quote it, not even in part.
    keys = []
    for position, item in enumerate(raw.split(","), 1):
        item = item.strip()
        try:
            key = base64.urlsafe_b64decode(item + "=" * (-len(item) % 4))
        except ValueError:
            key = b""
        if len(key) != 32 or not item:
            raise ValueError(f"value {position} is not 32 bytes in base64url (make one with secrets.token_urlsafe(32))")
        keys.append(key)
    if len(keys) > 2:
        raise ValueError("at most two comma-separated values (the new one first, the old one second)")
    return tuple(keys)


def _cidrs(raw: str) -> tuple[str, ...]:
    import ipaddress

    networks = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR") from None
    return tuple(networks)


_ENV = {
    "issuer": _text,
    "database_url": _text,
    "redis_url": _text,
    "keys_dir": _text,
    "key_store": _text,
    "key_encryption_key": _encryption_keys,
    "bind": _text,
    "signing_alg": _text,
    "access_token_ttl": _seconds,
    "id_token_ttl": _seconds,
    "refresh_token_ttl": _seconds,
    "trusted_proxies": _cidrs,
    "metrics_bind": _text,
    "metrics_token": _text,
    "endpoint_leeway": _seconds,
    "dpop_nonce_required": _flag,
    "log_format": _text,
    "argon2_memory_kib": _whole_number,
    "argon2_time_cost": _whole_number,
    "argon2_parallelism": _whole_number,
}


def _check_issuer(issuer: str) -> None:
    # OIDC Discovery §3: the issuer is an https URL without query or fragment;
    # plain http is accepted for loopback development only.
    try:
        parts = urlsplit(issuer)
        parts.port  # noqa: B018 - parsing the port is what can fail
    except ValueError:
        raise ConfigError(f"AUTHSVC_ISSUER: {issuer!r} is not an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"AUTHSVC_ISSUER: {issuer!r} is not an http(s) URL")
    if parts.query or parts.fragment or issuer.endswith("/"):
        raise ConfigError("AUTHSVC_ISSUER: no query, fragment or trailing slash allowed")
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError("AUTHSVC_ISSUER: http is allowed only on loopback; use https")


def _check_bind(bind: str, variable: str = "AUTHSVC_BIND") -> None:
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{variable}: {bind!r} is not HOST:PORT")

"""Settings read once from ``AUTHSVC_*`` environment variables.

Every variable is optional (defaults per CONTRACT.md). Each value is parsed
with its own type and checked at start, so a typo stops start-up with one
line naming the variable instead of failing later on a request.
"""

import os
from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
from urllib.parse import urlsplit

from .errors import ConfigError

SIGNING_ALGS = ("RS256", "ES256", "EdDSA")


@dataclass(frozen=True)
class Settings:
    issuer: str = "http://127.0.0.1:8000"
    database_url: str = "sqlite:///instance/authsvc.db"
    redis_url: str | None = None
    keys_dir: str = "keys"
    bind: str = "127.0.0.1:8000"
    signing_alg: str = "RS256"
    access_token_ttl: int = 600
    id_token_ttl: int = 600
    refresh_token_ttl: int = 1209600
    # CIDRs of reverse proxies whose X-Forwarded-For / X-Request-Id are believed; empty: the socket peer.
    trusted_proxies: tuple[str, ...] = ()
    # Where /metrics is served: "" means on the main bind, guarded by metrics_token when that is set.
    metrics_bind: str = ""
    metrics_token: str | None = None
    # Clock skew the issuer's own endpoints (userinfo, introspection) allow after exp.
    endpoint_leeway: int = 5
    # Not in the environment: fixed by the protocol or by our security choices.
    code_ttl: int = 60
    # A refresh token just spent may be presented again for this long (two tabs, a lost answer).
    refresh_grace: int = 5
    leeway: int = 60
    login_attempts_per_user: int = 10
    login_attempts_per_address: int = 50
    login_window: int = 300
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


def _text(raw: str) -> str:
    return raw.strip()


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
    "bind": _text,
    "signing_alg": _text,
    "access_token_ttl": _seconds,
    "id_token_ttl": _seconds,
    "refresh_token_ttl": _seconds,
    "trusted_proxies": _cidrs,
    "metrics_bind": _text,
    "metrics_token": _text,
    "endpoint_leeway": _seconds,
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

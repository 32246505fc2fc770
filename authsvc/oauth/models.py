"""Authlib model adapters over the store's plain records.

Authlib asks questions of clients, codes and tokens through mixin methods;
these classes answer them from the frozen records without copying rules
that live in ``accounts``.
"""

from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749 import TokenMixin

from .. import accounts

# Scopes every client may ask for in the browser flow; others must be registered.
OIDC_SCOPES = ("openid", "profile", "email", "offline_access")


class ClientModel(ClientMixin):
    def __init__(self, record):
        self.record = record
        self.client_id = record.client_id

    def get_client_id(self):
        return self.record.client_id

    def get_default_redirect_uri(self):
        # Only an unambiguous single registration may be implied (RFC 6749 §3.1.2.3).
        uris = self.record.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope):
        allowed = set(self.record.scope.split())
        if "authorization_code" in self.record.grant_types:
            allowed.update(OIDC_SCOPES)
        if not scope:
            return self.record.scope
        # Each scope once: "openid openid …" is one grant, not a longer consent list.
        return " ".join(dict.fromkeys(s for s in scope.split() if s in allowed))

    def check_redirect_uri(self, redirect_uri):
        # Exact string comparison (RFC 9700 §4.1.3): no prefix, no wildcard, no normalising.
        if redirect_uri in self.record.redirect_uris:
            return True
        return self.matches_by_loopback_port(redirect_uri)

    def matches_by_loopback_port(self, redirect_uri) -> bool:
        """True when ``redirect_uri`` is registered except for its loopback port.

        The one exception to exact matching, for public (native) clients only
        (RFC 8252 §7.3): a desktop app listens on whatever port the OS gives it.
        A confidential client is a server with a fixed address, so a code for it
        never goes to another local port. Whatever program holds the port gets
        the code, so the authorization endpoint asks the user before a URI
        allowed this way is used for the first time.
        """
        if not self.is_public or redirect_uri in self.record.redirect_uris:
            return False
        requested = _loopback_parts(redirect_uri)
        return requested is not None and any(_loopback_parts(uri) == requested for uri in self.record.redirect_uris)

    def check_client_secret(self, client_secret):
        return accounts.check_client_secret(self.record, client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.record.token_endpoint_auth_method

    def check_response_type(self, response_type):
        return response_type == "code" and "authorization_code" in self.record.grant_types

    def check_grant_type(self, grant_type):
        return grant_type in self.record.grant_types

    @property
    def client_metadata(self) -> dict:
        return {"post_logout_redirect_uris": list(self.record.post_logout_redirect_uris)}

    @property
    def is_public(self) -> bool:
        return self.record.token_endpoint_auth_method == "none"


def _loopback_parts(uri: str):
    """Everything but the port of an ``http://127.0.0.1`` or ``http://[::1]`` URI, else None.

    RFC 8252 §7.3: a native app listens on whatever loopback port the OS gives
    it, so the port may vary; scheme, IP literal, path and query still match
    exactly. ``localhost`` gets no such leeway (RFC 8252 §8.3).
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    if parts.scheme != "http" or parts.fragment or "#" in uri:
        return None
    netloc = parts.netloc
    host, port = (netloc, "") if netloc.endswith("]") or ":" not in netloc else netloc.rpartition(":")[::2]
    if host not in ("127.0.0.1", "[::1]") or not (port == "" or (port.isdigit() and len(port) <= 5)):
        return None
    return host, parts.path, parts.query


class CodeModel(AuthorizationCodeMixin):
    def __init__(self, record):
        self.record = record
        self.code_challenge = record.code_challenge
        self.code_challenge_method = record.code_challenge_method

    def get_redirect_uri(self):
        return self.record.redirect_uri

    def get_scope(self):
        return self.record.scope

    def get_nonce(self):
        return self.record.nonce

    def get_auth_time(self):
        return int(self.record.auth_time)

    def get_acr(self):
        return None

    def get_amr(self):
        return None


class RefreshTokenModel(TokenMixin):
    def __init__(self, record, clock):
        self.record = record
        self._clock = clock

    def check_client(self, client):
        return client.get_client_id() == self.record.client_id

    def get_scope(self):
        return self.record.scope

    def get_expires_in(self):
        return int(self.record.expires_at - self.record.issued_at)

    def is_expired(self):
        return self._clock() >= self.record.expires_at

    def is_revoked(self):
        return self.record.revoked_at is not None

    def get_user(self):
        return None

    def get_client(self):
        return None

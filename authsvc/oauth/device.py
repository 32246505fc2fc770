"""The device authorization grant (RFC 8628), on Authlib's endpoint and grant.

https://www.rfc-editor.org/rfc/rfc8628 — a TV or a command-line app asks
``/device_authorization`` for a ``device_code`` and a ``user_code``, shows the
user code, and polls ``/token`` with the device code while the user enters
the code at ``/device`` in a browser where they are signed in, and allows or
denies the request there.

- User codes are 8 letters from an alphabet without vowels or look-alikes
  (§6.1), shown as ``XXXX-XXXX``; what the user types is compared
  case-insensitively, ignoring dashes and spaces. About 34 bits: guessing is
  held off by the rate limit on the ``/device`` page (§5.1) and the short
  lifetime.
- Device codes are 256-bit random values, stored only as their SHA-256.
- Each poll is recorded in the shared store; one sooner than the interval
  is answered ``slow_down`` and raises the interval by 5 s (§3.5). An
  approved grant turns into tokens once, even when two polls race; later
  polls get ``invalid_grant``.
- Tokens come from the same issuance path as the authorization code grant:
  the access token, an ID token when ``openid`` was granted, and a refresh
  token under the ``offline_access`` rule (``issuance.offers_refresh``).
"""

import secrets

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749.errors import AccessDeniedError
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.errors import UnauthorizedClientError
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from authlib.oauth2.rfc8628 import AuthorizationPendingError
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint as BaseDeviceAuthorizationEndpoint
from authlib.oauth2.rfc8628 import DeviceCodeGrant as BaseDeviceCodeGrant
from authlib.oauth2.rfc8628 import DeviceCredentialMixin
from authlib.oauth2.rfc8628 import ExpiredTokenError
from authlib.oauth2.rfc8628 import SlowDownError

from ..errors import AlreadyExists
from ..store.records import DeviceCode
from .grants import AUTH_METHODS
from .grants import session_user
from .issuance import IssuesTokens
from .issuance import audience_for
from .issuance import secret_hash
from .models import OIDC_SCOPES

DEVICE_GRANT = DEVICE_CODE_GRANT_TYPE
VERIFICATION_PATH = "/device"
#: RFC 8628 §6.1: consonants only, so no code spells a word and none of 0/O, 1/I/L-style confusions arise.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
#: Seconds a device code and its user code live.
EXPIRES_IN = 600
#: Seconds a device waits between polls at first (§3.2).
INTERVAL = 5
# Longer than any way of writing a user code; anything longer is not one.
MAX_USER_CODE_INPUT = 32


def new_user_code() -> str:
    """A fresh user code in canonical form (8 letters, no dash)."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def display_user_code(code: str) -> str:
    """``BCDFGHJK`` → ``BCDF-GHJK``: two short groups are easier to read off a screen and type."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def normalize_user_code(text: str | None) -> str | None:
    """The canonical form of what a user typed, or None when it cannot be a user code.

    Case is ignored, and so are dashes and whitespace (§6.1: users type what
    they read, in whatever case, with or without the separator).
    """
    if not text or len(text) > MAX_USER_CODE_INPUT:
        return None
    letters = "".join(ch for ch in text if ch != "-" and not ch.isspace())
    if not letters.isascii():
        return None
    letters = letters.upper()
    if len(letters) != USER_CODE_LENGTH or not set(letters) <= set(USER_CODE_ALPHABET):
        return None
    return letters


def device_scope(client, requested: str | None) -> str:
    """The scope a device grant asks the user for: what the client may have, as the code flow allows.

    A device client may ask for its registered scopes and the OpenID Connect
    ones; others are dropped (RFC 6749 §3.3), each scope once. No scope means
    the client's registered scope.
    """
    if not requested:
        return client.scope
    allowed = set(client.scope.split()) | set(OIDC_SCOPES)
    return " ".join(dict.fromkeys(s for s in requested.split() if s in allowed))


class DeviceAuthorizationEndpoint(BaseDeviceAuthorizationEndpoint):
    """RFC 8628 §3.1–3.2: authenticate the client, store the grant, answer the codes."""

    CLIENT_AUTH_METHODS = AUTH_METHODS
    EXPIRES_IN = EXPIRES_IN
    INTERVAL = INTERVAL
    # A user code collides with a live one about once in 10^10 tries; a few retries are plenty.
    USER_CODE_ATTEMPTS = 5

    def create_endpoint_response(self, request):
        services = self.server.services
        client = self.authenticate_client(request)
        record = client.record
        if not client.check_grant_type(DEVICE_GRANT):
            raise UnauthorizedClientError("The client is not registered for the device authorization grant.")
        scope = device_scope(record, request.form.get("scope"))
        resource = request.form.get("resource") or None
        # RFC 8707 §2: refuse an unknown resource now, before the user is asked.
        audience_for(services.settings, record, resource)
        device_code = self.generate_device_code()
        now = services.clock()
        for _ in range(self.USER_CODE_ATTEMPTS):
            user_code = self.generate_user_code()
            try:
                services.store.create_device_code(
                    DeviceCode(
                        device_code_hash=secret_hash(device_code),
                        user_code=user_code,
                        client_id=record.client_id,
                        scope=scope,
                        resource=resource,
                        expires_at=now + self.EXPIRES_IN,
                        interval=self.INTERVAL,
                    )
                )
                break
            except AlreadyExists:
                continue
        else:
            raise RuntimeError("could not find a free user code")
        shown = display_user_code(user_code)
        verification_uri = self.get_verification_uri()
        data = {
            "device_code": device_code,
            "user_code": shown,
            "verification_uri": verification_uri,
            # §3.3.1: the code in the link too, for a QR code; the page still asks the user to confirm it.
            "verification_uri_complete": f"{verification_uri}?user_code={shown}",
            "expires_in": self.EXPIRES_IN,
            "interval": self.INTERVAL,
        }
        return 200, data, default_json_headers

    def generate_device_code(self):
        return secrets.token_urlsafe(32)

    def generate_user_code(self):
        return new_user_code()

    def get_verification_uri(self):
        return self.server.services.settings.issuer + VERIFICATION_PATH


class DeviceCredential(DeviceCredentialMixin):
    """A stored grant as Authlib's device-code grant sees it, judged at ``now``."""

    def __init__(self, record: DeviceCode, now: float, too_early: bool):
        self.record = record
        self.now = now
        self.too_early = too_early

    def get_client_id(self):
        return self.record.client_id

    def get_scope(self):
        return self.record.scope

    def get_user_code(self):
        return self.record.user_code

    def is_expired(self):
        return self.now >= self.record.expires_at


class DeviceCodeGrant(IssuesTokens, BaseDeviceCodeGrant):
    """RFC 8628 §3.4–3.5: the device polls; pending, slow_down, expired, denied, or tokens once."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self):
        device_code = self.request.form.get("device_code")
        if not device_code:
            raise InvalidRequestError("Missing 'device_code' parameter.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("The client is not registered for the device authorization grant.")
        self.request.client = client
        credential = self.query_device_credential(device_code)
        if credential is None:
            # Unknown, or issued to another client: RFC 6749 §5.2.
            raise InvalidGrantError("The device_code is invalid.")
        self.request.credential = credential
        self.request.user = self.validate_device_credential(credential)

    def query_device_credential(self, device_code):
        """Record this poll (the store decides slow_down) and return the grant, or None."""
        services = self.server.services
        now = services.clock()
        record, too_early = services.store.poll_device_code(
            secret_hash(device_code), self.request.client.get_client_id(), now
        )
        return None if record is None else DeviceCredential(record, now, too_early)

    def validate_device_credential(self, credential):
        """Answer the poll by the grant's state; return the user once it is approved, consuming it."""
        record = credential.record
        if record.status == "consumed":
            raise InvalidGrantError("The device_code was already used.")
        if credential.is_expired():
            raise ExpiredTokenError("The device_code has expired. Start again.")
        if record.status == "denied":
            raise AccessDeniedError("The user denied the request.")
        if record.status == "pending":
            if credential.too_early:
                raise SlowDownError("Polling too fast: wait 5 seconds more between requests.")
            raise AuthorizationPendingError("The user has not decided yet.")
        user = session_user(self.server, record)
        if user is None:
            raise InvalidGrantError("The user who approved this device is no longer signed in or active.")
        services = self.server.services
        if services.store.consume_device_code(record.device_code_hash, credential.now) is None:
            # Another poll, on this or another instance, won the race.
            raise InvalidGrantError("The device_code was already used.")
        return user

    @hooked
    def create_token_response(self):
        client = self.request.client
        user = self.request.user
        record = self.request.credential.record
        token = self.generate_token(user=user, scope=record.scope, include_refresh_token=True)
        if "openid" in token["scope"].split():
            token["id_token"] = self.server.mint_id_token(
                client, user, token["scope"], record.auth_time, record.sid, None, token
            )
        refresh = self.request.issued.refresh
        if refresh is not None:
            self.server.services.store.create_refresh_token(refresh)
        return 200, token, self.TOKEN_RESPONSE_HEADER

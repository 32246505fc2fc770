"""The browser session: a signed cookie any instance can read, no server memory.

The cookie carries ``sub``, ``sid`` and ``auth_time``. Logging out lists the
``sid`` in the shared revocation list, which ends the session on every
instance at once. CSRF tokens are HMACs bound to the session (or, before
login, to a random pre-session cookie), so a token from another browser,
another session or before a logout never validates.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import request
from itsdangerous import BadSignature
from itsdangerous import URLSafeTimedSerializer

from ..errors import NotFound
from ..store.records import BrowserSession

SESSION_COOKIE = "authsvc_session"
# Enough to tell browsers apart on the account page; the header itself is unbounded.
MAX_USER_AGENT_CHARS = 256
PRESESSION_COOKIE = "authsvc_csrf"


@dataclass(frozen=True)
class Login:
    user: object
    sid: str
    auth_time: float


def cookie_name(settings, base: str) -> str:
    # The __Host- prefix pins the cookie to this exact origin over https.
    return "__Host-" + base if settings.secure_cookies else base


class Sessions:
    def __init__(self, services):
        self.services = services
        self.settings = services.settings
        secret = services.keyring.session_secret()
        self._serializer = URLSafeTimedSerializer(secret, salt="authsvc.session")
        self._csrf_key = hmac.new(secret, b"authsvc.csrf", hashlib.sha256).digest()

    def current(self) -> Login | None:
        """The signed-in user of this request, or None."""
        raw = request.cookies.get(cookie_name(self.settings, SESSION_COOKIE))
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=self.settings.session_ttl)
            sub, sid, auth_time = data["sub"], data["sid"], float(data["auth_time"])
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        if self.services.revocations.is_session_ended(sid, sub, auth_time):
            return None
        try:
            user = self.services.store.get_user(sub)
        except NotFound:
            return None
        if user.disabled:
            return None
        return Login(user=user, sid=sid, auth_time=auth_time)

    def start(self, response, user) -> Login:
        """Sign ``user`` in with a fresh ``sid`` (a planted cookie never becomes a session)."""
        login = Login(user=user, sid=secrets.token_urlsafe(16), auth_time=float(int(self.services.clock())))
        value = self._serializer.dumps({"sub": user.sub, "sid": login.sid, "auth_time": login.auth_time})
        self._set(response, SESSION_COOKIE, value, self.settings.session_ttl)
        self.rotate_presession(response)
        self._record(login)
        return login

    def _record(self, login: Login) -> None:
        """Note the new session for the account page and back-channel logout."""
        now = self.services.clock()
        agent = "".join(c for c in request.headers.get("User-Agent", "") if c.isprintable())
        self.services.store.create_session(
            BrowserSession(
                sid=login.sid,
                sub=login.user.sub,
                created_at=now,
                last_seen_at=now,
                expires_at=now + self.settings.session_ttl,
                user_agent=agent[:MAX_USER_AGENT_CHARS],
                address=request.remote_addr or "",
            )
        )

    def end(self, response, login: Login | None) -> None:
        if login is not None:
            self.services.revocations.end_session(login.sid)
        response.delete_cookie(
            cookie_name(self.settings, SESSION_COOKIE),
            path="/",
            secure=self.settings.secure_cookies,
            httponly=True,
            samesite="Lax",
        )
        self.rotate_presession(response)

    def _set(self, response, base, value, max_age):
        response.set_cookie(
            cookie_name(self.settings, base),
            value,
            max_age=max_age,
            path="/",
            secure=self.settings.secure_cookies,
            httponly=True,
            # Lax, not Strict: the client's top-level redirect to /authorize must carry the cookie.
            samesite="Lax",
        )

    # CSRF --------------------------------------------------------------

    def presession(self) -> str | None:
        return request.cookies.get(cookie_name(self.settings, PRESESSION_COOKIE))

    def ensure_presession(self, response, value: str) -> None:
        if self.presession() != value:
            self._set(response, PRESESSION_COOKIE, value, self.settings.session_ttl)

    def rotate_presession(self, response) -> None:
        self._set(response, PRESESSION_COOKIE, secrets.token_urlsafe(16), self.settings.session_ttl)

    def csrf_binding(self, login: Login | None) -> str:
        """What a CSRF token is bound to: the session, or the pre-session cookie (new if absent)."""
        if login is not None:
            return "sid:" + login.sid
        return "pre:" + (self.presession() or secrets.token_urlsafe(16))

    def csrf_token(self, binding: str) -> str:
        return hmac.new(self._csrf_key, binding.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, login: Login | None) -> bool:
        sent = request.form.get("csrf_token", "")
        if login is not None:
            binding = "sid:" + login.sid
        elif self.presession():
            binding = "pre:" + self.presession()
        else:
            return False
        return hmac.compare_digest(sent.encode(), self.csrf_token(binding).encode())

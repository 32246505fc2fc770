"""OpenID Connect Back-Channel Logout 1.0: logout tokens owed to apps, and the sender that delivers them.

https://openid.net/specs/openid-connect-backchannel-1_0.html

When a browser session ends (logout, the account page, an admin revoking a
session or a user), ``Store.end_sessions`` writes one outbox row per client
that was issued tokens in that session and registered a
``backchannel_logout_uri``. The row keeps the token's fixed claims (``jti``,
``sid``, ``sub``); the user's logout never waits for an app.

``LogoutSender`` runs in every worker. It claims one due row at a time under a
lease, signs the logout token (a fresh ``iat``/``exp`` each attempt, the same
``jti``), POSTs it, and records the outcome; a failure is retried with
exponential backoff, at most ``MAX_ATTEMPTS`` times and for ``MAX_AGE``
seconds. Whichever instance is free sends; rows survive restarts.

Delivery is once per logout per client, with one honest exception: an
instance that dies after the app received the POST but before it recorded
success leaves a claim that runs out, and another instance sends the same
token (same ``jti``) again. No protocol can tell "received" from "not
received" across that crash; the spec's answer is that receivers refuse a
``jti`` they have seen (§2.6), and the lease keeps the window to one attempt.
"""

import http.client
import json
import logging
import random
import threading
import urllib.error
import urllib.request
from urllib.parse import urlencode

from .errors import KeyRingError
from .errors import NotFound
from .errors import StoreUnavailable
from .events import security_event
from .tokens import new_jti

log = logging.getLogger(__name__)
# Our own generator: the sender's jitter must not draw from (or disturb) the application's global one.
_JITTER = random.Random()

POST_TIMEOUT = 5.0
# Longer than an attempt can take (connect, send and the answer, each bounded by POST_TIMEOUT).
LEASE = 3 * POST_TIMEOUT
MAX_ATTEMPTS = 10
MAX_AGE = 3600
MAX_BACKOFF = 600
# How often an idle sender looks for work queued by other instances (a local logout wakes it at once).
POLL_INTERVAL = 5.0
# Deliveries per wake-up, so one sweep stays bounded however long the queue is.
BATCH = 20


def logout_claims(sid: str, sub: str | None) -> str:
    """The claims that stay the same on every delivery attempt of one logout token, as stored."""
    return json.dumps({"jti": new_jti(), "sid": sid, "sub": sub})


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt: 2, 4, 8, … at most MAX_BACKOFF."""
    return float(min(2**attempts, MAX_BACKOFF))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        # A redirect is not a delivery; following it would resend the token elsewhere.
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post_form(uri: str, fields: dict, timeout: float) -> int:
    """POST ``fields`` form-encoded; return the status (raises OSError when there is no answer)."""
    request = urllib.request.Request(
        uri,
        data=urlencode(fields).encode(),
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "authsvc back-channel logout"},
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


class LogoutSender:
    """Deliver due back-channel logout tokens: ``run_once()`` now, or ``start()`` a daemon thread."""

    def __init__(self, store, tokens, clock, *, post=post_form, poll_interval: float = POLL_INTERVAL):
        self.store = store
        self.tokens = tokens
        self.clock = clock
        self.post = post
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopped = threading.Event()

    def run_once(self, limit: int = BATCH) -> int:
        """Attempt up to ``limit`` due deliveries; return how many were attempted."""
        attempted = 0
        while attempted < limit:
            now = self.clock()
            delivery = self.store.claim_logout_delivery(now, LEASE, max_attempts=MAX_ATTEMPTS, not_before=now - MAX_AGE)
            if delivery is None:
                break
            attempted += 1
            self._attempt(delivery)
        return attempted

    def _attempt(self, delivery) -> None:
        fixed = json.loads(delivery.logout_claims)
        who = {"client_id": delivery.client_id, "sub": fixed.get("sub"), "jti": fixed["jti"]}
        try:
            client = self.store.get_client(delivery.client_id)
            token = self.tokens.mint_logout_token(
                client_id=client.client_id,
                alg=client.id_token_signed_response_alg,
                jti=fixed["jti"],
                sid=fixed.get("sid"),
                sub=fixed.get("sub"),
            )
            status = self.post(delivery.uri, {"logout_token": token}, POST_TIMEOUT)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except NotFound:
            error = "client deleted"
        except KeyRingError:
            error = f"no active {client.id_token_signed_response_alg} key to sign with"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # Refused, timed out, TLS, a broken answer; ValueError: a URI urllib cannot use.
            error = _reason(exc)
        now = self.clock()
        if error is None:
            if not self.store.finish_logout_delivery(delivery, now, delivered=True):
                log.warning("logout token %s delivered after its claim ran out; it may be sent again", who["jti"])
            security_event("logout.delivered", attempt=delivery.attempts, **who)
            return
        final = (
            delivery.attempts >= MAX_ATTEMPTS
            or delivery.created_at + MAX_AGE <= now + backoff(delivery.attempts)
            or error == "client deleted"
        )
        retry_at = None if final else now + backoff(delivery.attempts)
        self.store.finish_logout_delivery(delivery, now, delivered=False, retry_at=retry_at, error=error)
        security_event(
            "logout.delivery_failed",
            logging.ERROR if final else logging.WARNING,
            attempt=delivery.attempts,
            error=error,
            retry_at=retry_at,
            final=final,
            **who,
        )

    # The background thread ------------------------------------------------

    def start(self) -> None:
        """Start the daemon thread once per process; a no-op after ``stop``."""
        if self._thread is not None or self._stopped.is_set():
            return
        with self._lock:
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(target=self._loop, name="authsvc-logout-sender", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        """Look for work now (a logout was just queued here)."""
        self._wake.set()

    def stop(self, timeout: float = 2 * POST_TIMEOUT) -> None:
        """Stop the thread for good; a claim it holds runs out and another instance takes the row."""
        self._stopped.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                self.run_once()
            except StoreUnavailable as exc:
                log.warning("back-channel logout sender: %s", exc)
            except Exception:  # noqa: BLE001 - the thread must outlive any one bad row
                log.exception("back-channel logout sender failed; retrying")
            # Jitter keeps the instances' polls apart.
            self._wake.wait(self.poll_interval * _JITTER.uniform(0.8, 1.2))
            self._wake.clear()


def _reason(exc: Exception) -> str:
    """A short, URI-free description of a failed POST."""
    inner = getattr(exc, "reason", None)
    if isinstance(inner, Exception):
        exc = inner
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__

"""The login page: a server-rendered form, no JavaScript, no outside assets.

Every attempt is counted before any password work (``authsvc.ratelimit``:
moving windows, atomic, shared by every instance):

- per client address, a throttle: past ``login_attempts_per_address`` in
  ``login_address_window`` seconds the address gets 429 with Retry-After until
  a slot frees. It says nothing about any account, and it only slows the
  address down: refused attempts are not counted, so no one behind a shared
  address is locked out for longer than the window.
- per username (normalised, whether or not the account exists), a temporary
  lock: past ``login_attempts_per_user`` in ``login_window`` seconds the
  answer is the same "Sign-in failed" as any failure. A successful login
  clears its username's count.

Every failure that reaches the password check (unknown user, wrong password,
disabled account) costs the same argon2 verification and gets the same answer.
"""

import logging
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from flask import Blueprint
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request

from .. import accounts
from .. import ratelimit
from ..errors import NotFound
from ..events import security_event
from . import services
from . import sessions

bp = Blueprint("login", __name__)

FAILED = "Sign-in failed. Check your username and password, or wait a few minutes if you tried many times."
THROTTLED = "Too many sign-in attempts from your network. Please try again in {seconds} seconds."


class Throttled(Exception):
    """The client address is over its limit; it may try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


@bp.route("/login", methods=["GET", "POST"])
def login():
    return_to = safe_return_to(request.values.get("return_to"))
    if request.method == "GET":
        return render_login(return_to, request.args.get("login_hint", ""))
    if not sessions().check_csrf(None):
        return render_login(return_to, "", error="Your sign-in form expired. Please try again.", status=400)
    username = request.form.get("username", "")
    try:
        user = attempt(username, request.form.get("password", ""))
    except Throttled as throttled:
        response = render_login(return_to, username, error=THROTTLED.format(seconds=throttled.retry_after), status=429)
        response.headers["Retry-After"] = str(throttled.retry_after)
        return response
    if user is None:
        return render_login(return_to, username, error=FAILED, status=401)
    response = redirect(return_to or "/", code=303)
    sessions().start(response, user)
    return response


@bp.get("/")
def home():
    """Where a sign-in without an app to return to lands."""
    current = sessions().current()
    if current is None:
        return redirect("/login", code=303)
    return render_template("signed_in.html", login=current)


def attempt(username: str, password: str):
    """Authenticate within the rate limits; None for every kind of failure, Throttled for a busy address."""
    svc = services()
    settings = svc.settings
    address = request.remote_addr or "unknown"
    per_address = ratelimit.limit("login-address", settings.login_attempts_per_address, settings.login_address_window)
    if not svc.limiter.hit(per_address, address):
        retry_after = max(1, svc.limiter.retry_after(per_address, address))
        security_event("login.throttled", logging.WARNING, address=address, retry_after=retry_after)
        raise Throttled(retry_after)
    # The store's own key for usernames (NFKC + casefold): "Alice" and "ａlice" share one count.
    name = accounts.normalize_username(username).casefold()
    per_user = ratelimit.limit("login-user", settings.login_attempts_per_user, settings.login_window)
    username_hash = ratelimit.digest(name)[:16]
    if name and not svc.limiter.hit(per_user, name):
        security_event("login.locked", logging.WARNING, username_hash=username_hash, address=address)
        return None
    too_long = (
        len(username) > accounts.MAX_USERNAME_CHARS
        or len(password.encode("utf-8", "replace")) > accounts.MAX_PASSWORD_BYTES
    )
    if too_long or not name or not password:
        accounts.authenticate(svc.store, "", "x", settings)  # same cost as a real attempt
        user = None
    else:
        user = accounts.authenticate(svc.store, username, password, settings)
    if user is None:
        security_event("login.failed", username_hash=username_hash, address=address)
        return None
    security_event("login.succeeded", sub=user.sub, address=address)
    svc.limiter.clear(per_user, name)
    return user


def render_login(return_to, username, error=None, status=200):
    s = sessions()
    binding = s.csrf_binding(None)
    body = render_template(
        "login.html",
        return_to=return_to or "",
        username=username,
        error=error,
        csrf_token=s.csrf_token(binding),
        app_name=asking_app(return_to),
    )
    response = make_response(body, status)
    s.ensure_presession(response, binding.removeprefix("pre:"))
    return response


def asking_app(return_to: str | None) -> str | None:
    """The name of the client whose authorization request the login continues, if it is one we know."""
    if not return_to or not return_to.startswith("/authorize?"):
        return None
    client_ids = parse_qs(urlsplit(return_to).query).get("client_id", [])
    if len(client_ids) != 1:
        return None
    try:
        return services().store.get_client(client_ids[0]).name
    except (NotFound, ValueError):
        return None


def safe_return_to(value: str | None) -> str | None:
    """Only a same-origin path back to /authorize, /device or /account (RFC 9700 §4.11: no open redirect)."""
    if not value:
        return None
    parts = urlsplit(value)
    back_to_page = value.startswith(("/authorize?", "/device?")) or value in ("/device", "/account")
    if parts.scheme or parts.netloc or not back_to_page or "\\" in value:
        return None
    return value

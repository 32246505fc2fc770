"""The login page: a server-rendered form, no JavaScript, no outside assets.

Failed logins count per username and per client address in the shared
store (or Redis), so the limit holds across instances. Every failure —
unknown user, wrong password, disabled or locked account — gets the same
answer, and costs the same argon2 verification.
"""

from urllib.parse import urlsplit

from flask import Blueprint
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request

from .. import accounts
from . import services
from . import sessions

bp = Blueprint("login", __name__)

FAILED = "Sign-in failed. Check your username and password, or wait a few minutes if you tried many times."


@bp.route("/login", methods=["GET", "POST"])
def login():
    return_to = safe_return_to(request.values.get("return_to"))
    if request.method == "GET":
        return render_login(return_to, request.args.get("login_hint", ""))
    if not sessions().check_csrf(None):
        return render_login(return_to, "", error="Your sign-in form expired. Please try again.", status=400)
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    user = attempt(username, password)
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
    """Authenticate within the rate limits; None for every kind of failure."""
    svc = services()
    settings = svc.settings
    user_key = "login:user:" + accounts.normalize_username(username).casefold()[:200]
    addr_key = "login:addr:" + (request.remote_addr or "unknown")
    window = settings.login_window
    locked = (
        svc.limiter.count(user_key, window) >= settings.login_attempts_per_user
        or svc.limiter.count(addr_key, window) >= settings.login_attempts_per_address
    )
    too_long = (
        len(username) > accounts.MAX_USERNAME_CHARS
        or len(password.encode("utf-8", "replace")) > accounts.MAX_PASSWORD_BYTES
    )
    if locked or too_long or not username or not password:
        accounts.authenticate(svc.store, "", "x")  # same cost as a real attempt
        user = None
    else:
        user = accounts.authenticate(svc.store, username, password)
    if user is None:
        svc.limiter.hit(user_key, window)
        svc.limiter.hit(addr_key, window)
        return None
    svc.limiter.reset(user_key)
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
    )
    response = make_response(body, status)
    s.ensure_presession(response, binding.removeprefix("pre:"))
    return response


def safe_return_to(value: str | None) -> str | None:
    """Only a same-origin path back to the authorization endpoint (RFC 9700 §4.11: no open redirect)."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/authorize?") or "\\" in value:
        return None
    return value

"""The account page: a signed-in user's browser sessions and the apps they allowed.

``GET /account`` lists them; ``POST /account`` (CSRF token bound to the
session) does one thing, named by ``action``:

- ``end_session`` + ``sid``: end one of the user's sessions. Its ``sid`` goes
  on the revocation list (its tokens stop working everywhere) and the apps
  that hold it get a back-channel logout token.
- ``end_all``: revoke the user (``sub``): every session, this one included,
  and every token issued before now.
- ``withdraw`` + ``client_id``: forget the consent and revoke the refresh
  tokens the app holds for this user, with their access tokens.

A ``sid`` or ``client_id`` that is not the user's gets the same 404 as one
that does not exist, so the page tells nobody about other accounts.
"""

import re
import time
from urllib.parse import urlencode

from flask import Blueprint
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request

from ..errors import NotFound
from ..events import security_event
from ..oauth.claims import describe_scopes
from . import forms
from . import services
from . import sessions
from .errors import error_response

bp = Blueprint("account", __name__)

ACTIONS = ("end_session", "end_all", "withdraw")
EXPIRED_FORM = "The form expired. Please go back to your account page and try again."
NOT_SIGNED_IN = "You are not signed in any more. Sign in again to manage your account."


@bp.route("/account", methods=["GET", "POST"])
def account():
    forms.check_params(request.args, request.form)
    login = sessions().current()
    if login is None:
        if request.method == "GET":
            return redirect("/login?" + urlencode({"return_to": "/account"}), code=303)
        return error_response(401, "login_required", NOT_SIGNED_IN)
    if request.method == "GET":
        return _page(login)
    if not sessions().check_csrf(login):
        return error_response(400, "invalid_request", EXPIRED_FORM)
    action = request.form.get("action")
    if action == "end_session":
        return _end_session(login, request.form.get("sid", ""))
    if action == "end_all":
        return _end_all(login)
    if action == "withdraw":
        return _withdraw(login, request.form.get("client_id", ""))
    return error_response(400, "invalid_request", f"Unknown action: choose one of {', '.join(ACTIONS)}.")


def _page(login):
    from .oauth import render_page

    svc = services()
    browsers = [
        {
            "sid": session.sid,
            "device": describe_device(session.user_agent),
            "address": session.address or "unknown address",
            "signed_in": _when(session.created_at),
            "last_seen": _when(session.last_seen_at),
            "current": session.sid == login.sid,
        }
        for session in svc.store.list_sessions(login.user.sub, svc.clock())
    ]
    # This browser first: it is the one the person is looking at.
    browsers.sort(key=lambda b: not b["current"])
    apps = [
        {
            "client_id": client.client_id,
            "name": client.name,
            "scopes": describe_scopes(consent.scope),
            "granted": _when(consent.granted_at),
        }
        for consent, client in svc.store.list_consents_of(login.user.sub)
    ]
    return render_page("account.html", login, sessions=browsers, apps=apps)


def _end_session(login, sid):
    svc = services()
    try:
        session = svc.store.get_session(sid) if sid else None
    except (NotFound, ValueError):
        session = None
    if session is None or session.sub != login.user.sub or session.ended_at is not None:
        return error_response(404, "not_found", "That session does not exist or has ended already.")
    svc.revocations.end_session(sid)
    security_event("session.revoked", sub=login.user.sub, sid=sid, by="account")
    if sid == login.sid:
        return _signed_out()
    return redirect("/account", code=303)


def _end_all(login):
    svc = services()
    listed = svc.store.list_sessions(login.user.sub, svc.clock())
    svc.revocations.revoke_subject(login.user.sub)
    # The subject entry covers sessions that began before it, to the second (auth_time is
    # whole seconds); each session shown on the page is also ended by its own sid.
    for session in listed:
        svc.revocations.end_session(session.sid)
    security_event("session.revoked", sub=login.user.sub, sid="*", by="account")
    return _signed_out()


def _withdraw(login, client_id):
    svc = services()
    try:
        withdrawn = bool(client_id) and svc.store.delete_consent(login.user.sub, client_id)
    except ValueError:
        withdrawn = False
    if not withdrawn:
        return error_response(404, "not_found", "That app is not among the apps you allowed.")
    svc.revocations.revoke_grant(login.user.sub, client_id)
    security_event("consent.withdrawn", client_id=client_id, sub=login.user.sub)
    return redirect("/account", code=303)


def _signed_out():
    # The session is revoked already; this only clears the cookie.
    response = make_response(render_template("logged_out.html"))
    sessions().end(response, None)
    return response


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


# Most specific first: Edge and Opera say "Chrome", Chrome says "Safari".
_BROWSERS = (
    ("Edge", r"\bEdg(e|A|iOS)?/"),
    ("Opera", r"\bOPR/"),
    ("Firefox", r"\b(Firefox|FxiOS)/"),
    ("Chrome", r"\b(HeadlessChrome|Chrome|Chromium|CriOS)/"),
    ("Safari", r"\bSafari/"),
    ("curl", r"^curl/"),
)
_SYSTEMS = (
    ("Android", r"\bAndroid\b"),
    ("iPhone", r"\biPhone\b"),
    ("iPad", r"\biPad\b"),
    ("Windows", r"\bWindows\b"),
    ("ChromeOS", r"\bCrOS\b"),
    ("macOS", r"\bMac OS X\b|\bMacintosh\b"),
    ("Linux", r"\bLinux\b"),
)


def describe_device(user_agent: str) -> str:
    """A short name for the browser a User-Agent header describes ("Firefox on Linux")."""
    browser = next((name for name, pattern in _BROWSERS if re.search(pattern, user_agent)), None)
    system = next((name for name, pattern in _SYSTEMS if re.search(pattern, user_agent)), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system
    shown = user_agent.strip()[:60]
    return shown or "Unknown browser"

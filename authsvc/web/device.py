"""The ``/device`` page (RFC 8628 §3.3): a signed-in user enters the code their device shows,
then allows or denies that device.

Three steps, each a server-rendered page without JavaScript:

1. GET ``/device[?user_code=…]``: the code form (prefilled from a
   ``verification_uri_complete`` link), behind login.
2. POST the code (CSRF token bound to the session): the consent page names
   the app, its scopes and the code, so the user can check it against the
   device (§5.4: a code sent by someone else is a phishing attempt).
3. POST the decision: its CSRF token is bound to the session *and* the code
   shown, so a decision cannot be posted for a code the user never looked up.

Only step 2 tries a code, and every try is counted before the look-up, per
client address and per user, with the login limiter (§5.1: a user code has
about 34 bits, too few to survive unlimited guessing). A successful look-up
clears nothing: anyone can create fresh codes of their own to interleave.
"""

import hmac
import logging
from urllib.parse import urlencode

from flask import Blueprint
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request

from .. import ratelimit
from ..errors import NotFound
from ..events import security_event
from ..oauth.claims import describe_scopes
from ..oauth.device import display_user_code
from ..oauth.device import normalize_user_code
from ..store import Consent
from . import forms
from . import services
from . import sessions

bp = Blueprint("device", __name__)

UNKNOWN = "That code is not valid, has expired or was already used. Check your device, or start again there."
EXPIRED_FORM = "The form expired. Please enter the code again."
THROTTLED = "Too many codes tried. Please try again in {seconds} seconds."


@bp.route("/device", methods=["GET", "POST"])
def device():
    # Repeated, over-long or NUL-bearing parameters end here, on an HTML page.
    forms.check_params(request.args, request.form)
    login = sessions().current()
    typed = request.values.get("user_code", "")
    if login is None:
        return redirect("/login?" + urlencode({"return_to": _return_to(typed)}), code=303)
    if request.method == "GET":
        return _code_form(login, typed)
    if "decision" in request.form:
        return _decide(login, typed)
    return _look_up(login, typed)


def _look_up(login, typed):
    """Step 2: count the try, find the pending grant, show what it asks for."""
    if not sessions().check_csrf(login):
        return _code_form(login, typed, EXPIRED_FORM, 400)
    retry_after = _throttled(login)
    if retry_after:
        response = _code_form(login, typed, THROTTLED.format(seconds=retry_after), 429)
        response.headers["Retry-After"] = str(retry_after)
        return response
    found = _pending(normalize_user_code(typed))
    if found is None:
        return _code_form(login, typed, UNKNOWN, 400)
    record, client = found
    shown = display_user_code(record.user_code)
    return _page(
        "device_consent.html",
        login,
        csrf_token=_decision_token(login, record.user_code),
        client=client,
        scopes=describe_scopes(record.scope),
        user_code=shown,
    )


def _decide(login, typed):
    """Step 3: approve or deny, once, while the grant is pending."""
    code = normalize_user_code(typed)
    decision = request.form.get("decision")
    if code is None or decision not in ("allow", "deny") or not _check_decision_token(login, code):
        return _code_form(login, "", EXPIRED_FORM, 400)
    svc = services()
    approved = decision == "allow"
    record = svc.store.decide_device_code(
        code, svc.clock(), approved=approved, sub=login.user.sub, auth_time=login.auth_time, sid=login.sid
    )
    if record is None:
        return _code_form(login, "", UNKNOWN, 400)
    try:
        client = svc.store.get_client(record.client_id)
    except NotFound:  # deleted a moment ago; its grants went with it
        return _code_form(login, "", UNKNOWN, 400)
    who = {"client_id": client.client_id, "sub": login.user.sub, "scope": record.scope}
    if approved:
        _remember_consent(login, client, record.scope)
        # The device's tokens belong to this session: its logout reaches the client's back channel too.
        if login.sid:
            svc.store.record_session_client(login.sid, client.client_id, svc.clock())
        security_event("device.approved", **who)
    else:
        security_event("device.denied", **who)
    return _page("device_done.html", login, approved=approved, client=client)


def _pending(code):
    """The pending, unexpired grant a canonical user code names, and its client; else None."""
    if code is None:
        return None
    store = services().store
    try:
        record = store.get_device_code_by_user_code(code)
        client = store.get_client(record.client_id)
    except NotFound:
        return None
    if record.status != "pending" or record.expires_at <= services().clock():
        return None
    return record, client


def _throttled(login) -> int:
    """Count one try per address and per user; seconds to wait when over a limit, else 0."""
    svc = services()
    settings = svc.settings
    address = request.remote_addr or "unknown"
    limits = (
        (
            ratelimit.limit("device-address", settings.login_attempts_per_address, settings.login_address_window),
            address,
        ),
        (ratelimit.limit("device-user", settings.login_attempts_per_user, settings.login_window), login.user.sub),
    )
    for item, value in limits:
        if not svc.limiter.hit(item, value):
            retry_after = max(1, svc.limiter.retry_after(item, value))
            security_event(
                "device.throttled", logging.WARNING, sub=login.user.sub, address=address, retry_after=retry_after
            )
            return retry_after
    return 0


def _decision_token(login, code: str) -> str:
    return sessions().csrf_token(f"device:{login.sid}:{code}")


def _check_decision_token(login, code: str) -> bool:
    sent = request.form.get("csrf_token", "")
    return hmac.compare_digest(sent.encode(), _decision_token(login, code).encode())


def _remember_consent(login, client, scope) -> None:
    """Add the scope to the user's consent for the app, so the account page lists it and can withdraw it."""
    svc = services()
    try:
        previous = svc.store.get_consent(login.user.sub, client.client_id)
    except NotFound:
        previous = None
    granted = (previous.scope.split() if previous else []) + scope.split()
    svc.store.save_consent(
        Consent(
            login.user.sub,
            client.client_id,
            " ".join(dict.fromkeys(granted)),
            svc.clock(),
            redirect_uris=previous.redirect_uris if previous else (),
        )
    )


def _return_to(typed: str) -> str:
    """Where login sends the user back: this page, with the code when it is one."""
    code = normalize_user_code(typed)
    return "/device" + ("?" + urlencode({"user_code": display_user_code(code)}) if code else "")


def _code_form(login, typed, error=None, status=200):
    code = normalize_user_code(typed)
    return _page(
        "device.html",
        login,
        status,
        csrf_token=sessions().csrf_token(sessions().csrf_binding(login)),
        user_code=display_user_code(code) if code else "",
        error=error,
    )


def _page(template, login, status=200, **context):
    return make_response(render_template(template, login=login, **context), status)

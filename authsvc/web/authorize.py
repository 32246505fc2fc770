"""The authorization endpoint's decisions: who is signed in, whether they
must sign in again (``prompt``, ``max_age``), and whether to ask for consent.

https://openid.net/specs/openid-connect-core-1_0.html#AuthRequest
"""

from urllib.parse import urlencode

from flask import redirect
from flask import request

from ..errors import NotFound
from ..oauth.claims import describe_scopes
from ..oauth.errors import ConsentRequiredError
from ..oauth.errors import InvalidRequestError
from ..oauth.errors import LoginRequiredError
from ..oauth.errors import OAuth2Error
from ..store import Consent
from . import server
from . import services
from . import sessions
from .errors import error_response


def authorize_request():
    srv, s = server(), sessions()
    login = s.current()
    try:
        grant = srv.get_consent_grant(end_user=login)
        prompts = _prompts(grant)
    except OAuth2Error as error:
        return _error(error)
    if _needs_login(login, prompts):
        if "none" in prompts:
            return _error(LoginRequiredError(redirect_uri=grant.redirect_uri, state=request.args.get("state")))
        return redirect("/login?" + urlencode({"return_to": _after_login_url(), **_hint()}), code=303)
    client = grant.request.client.record
    scope = grant.request.scope or ""
    if _needs_consent(login, client, scope, prompts):
        if "none" in prompts:
            return _error(ConsentRequiredError(redirect_uri=grant.redirect_uri, state=request.args.get("state")))
        if request.method == "GET" or not s.check_csrf(login):
            from .oauth import render_page

            status = 200 if request.method == "GET" else 400
            error = None if status == 200 else "The consent form expired. Please decide again."
            return render_page("consent.html", login, status, client=client, scopes=describe_scopes(scope), error=error)
        if request.form.get("decision") != "allow":
            return srv.create_authorization_response(grant=grant, grant_user=None)
        services().store.save_consent(Consent(login.user.sub, client.client_id, scope, services().clock()))
    return srv.create_authorization_response(grant=grant, grant_user=login)


def _prompts(grant) -> set[str]:
    prompts = set(request.args.get("prompt", "").split())
    bad = prompts - {"none", "login", "consent"}
    if bad or ("none" in prompts and len(prompts) > 1):
        raise InvalidRequestError(
            "Invalid 'prompt' parameter.", redirect_uri=grant.redirect_uri, state=request.args.get("state")
        )
    mode = request.args.get("response_mode")
    if mode not in (None, "query"):
        raise InvalidRequestError(
            "Only response_mode=query is supported.", redirect_uri=grant.redirect_uri, state=request.args.get("state")
        )
    max_age = request.args.get("max_age")
    if max_age is not None and not (max_age.isdigit() and len(max_age) < 10):
        raise InvalidRequestError(
            "Invalid 'max_age' parameter.", redirect_uri=grant.redirect_uri, state=request.args.get("state")
        )
    return prompts


def _needs_login(login, prompts) -> bool:
    if login is None or "login" in prompts:
        return True
    max_age = request.args.get("max_age")
    return max_age is not None and services().clock() - login.auth_time > int(max_age)


def _needs_consent(login, client, scope, prompts) -> bool:
    if client.first_party:
        return False
    if "consent" in prompts:
        return True
    try:
        consent = services().store.get_consent(login.user.sub, client.client_id)
    except NotFound:
        return True
    return not set(scope.split()) <= set(consent.scope.split())


def _after_login_url() -> str:
    """This request again, minus what the fresh login satisfies (prompt=login, max_age)."""
    params = []
    for key, value in request.args.items(multi=True):
        if key == "max_age":
            continue
        if key == "prompt":
            value = " ".join(p for p in value.split() if p != "login")
            if not value:
                continue
        params.append((key, value))
    return "/authorize?" + urlencode(params)


def _hint() -> dict:
    hint = request.args.get("login_hint")
    return {"login_hint": hint} if hint else {}


def _error(error: OAuth2Error):
    """Redirect to the client only once its redirect URI is proven; otherwise an HTML page."""
    if not error.redirect_uri:
        return error_response(400, error.error, error.get_error_description() or "Invalid authorization request.")
    response = server().handle_error_response(None, error)
    return _with_issuer(response)


def _with_issuer(response):
    # RFC 9207: error responses name the issuer too.
    from ..oauth.errors import add_params_to_uri

    location = response.headers.get("Location")
    if location and "iss=" not in location.split("?", 1)[-1]:
        response.headers["Location"] = add_params_to_uri(location, [("iss", services().settings.issuer)])
    response.status_code = 302
    return response

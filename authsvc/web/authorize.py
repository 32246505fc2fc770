"""The authorization endpoint's decisions: who is signed in, whether they
must sign in again (``prompt``, ``max_age``), and whether to ask for consent.

https://openid.net/specs/openid-connect-core-1_0.html#AuthRequest
"""

import logging
from urllib.parse import urlencode

from flask import redirect
from flask import request

from ..errors import KeyRingError
from ..errors import NotFound
from ..events import security_event
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
from .par import consume_pushed_request
from .par import login_is_fresh
from .par import pushed_request_url

log = logging.getLogger(__name__)

# Loopback redirect URIs remembered per consent (RFC 8252 §7.3 ports).
MAX_APPROVED_REDIRECT_URIS = 20


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
    if not _id_token_signable(client, scope):
        return _error(_unavailable(grant))
    # A redirect URI allowed only by its loopback port may be any program on the user's machine.
    by_port = grant.request.client.matches_by_loopback_port(grant.redirect_uri)
    port_only_uri = grant.redirect_uri if by_port else None
    consent = None if client.first_party and not by_port else _consent(login, client)
    if _needs_consent(consent, client, scope, port_only_uri, prompts):
        if "none" in prompts:
            return _error(ConsentRequiredError(redirect_uri=grant.redirect_uri, state=request.args.get("state")))
        if request.method == "GET" or not s.check_csrf(login):
            from .oauth import render_page

            status = 200 if request.method == "GET" else 400
            error = None if status == 200 else "The consent form expired. Please decide again."
            return render_page(
                "consent.html",
                login,
                status,
                client=client,
                scopes=describe_scopes(scope),
                local_redirect_uri=port_only_uri,
                error=error,
            )
        if request.form.get("decision") != "allow":
            return _respond(srv, grant, None)
        _save_consent(login, client, scope, consent, port_only_uri)
    return _respond(srv, grant, login)


def _respond(srv, grant, grant_user):
    # RFC 9126 §7.3: a pushed request gets one authorization response (code or denial).
    error = consume_pushed_request(grant.redirect_uri, request.args.get("state"))
    if error is not None:
        return _error(error)
    return srv.create_authorization_response(grant=grant, grant_user=grant_user)


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
    if login_is_fresh(login):
        return False
    if login is None or "login" in prompts:
        return True
    max_age = request.args.get("max_age")
    return max_age is not None and services().clock() - login.auth_time > int(max_age)


def _consent(login, client) -> Consent | None:
    try:
        return services().store.get_consent(login.user.sub, client.client_id)
    except NotFound:
        return None


def _needs_consent(consent, client, scope, port_only_uri, prompts) -> bool:
    """Whether the user must be asked; ``port_only_uri`` is a redirect URI matched by loopback port only.

    Such a URI needs the user's yes once for that exact URI, first-party
    client or not: a second program on the machine can pick its own port,
    PKCE and ``prompt=none``, and would otherwise get a code silently.
    """
    if client.first_party and port_only_uri is None:
        return False
    if "consent" in prompts or consent is None:
        return True
    if port_only_uri is not None and port_only_uri not in consent.redirect_uris:
        return True
    return not client.first_party and not set(scope.split()) <= set(consent.scope.split())


def _save_consent(login, client, scope, previous, port_only_uri) -> None:
    approved = previous.redirect_uris if previous else ()
    if port_only_uri is not None:
        # The latest few only: a native app on ephemeral ports would otherwise grow this without end.
        approved = (*(uri for uri in approved if uri != port_only_uri), port_only_uri)[-MAX_APPROVED_REDIRECT_URIS:]
    svc = services()
    svc.store.save_consent(Consent(login.user.sub, client.client_id, scope, svc.clock(), redirect_uris=approved))
    security_event(
        "consent.granted", client_id=client.client_id, sub=login.user.sub, scope=scope, redirect_uri=port_only_uri
    )


def _id_token_signable(client, scope) -> bool:
    """False when the client's ID-token algorithm has no active key, so its code could not be redeemed."""
    if "openid" not in scope.split():
        return True
    keyring = services().keyring
    keyring.reload_if_changed()
    try:
        keyring.active(client.id_token_signed_response_alg)
    except KeyRingError as error:
        log.error("client %s: cannot sign its ID tokens: %s", client.client_id, error)
        return False
    return True


def _unavailable(grant) -> OAuth2Error:
    # RFC 6749 §4.1.2.1: the error an authorization endpoint gives for a server-side problem.
    return OAuth2Error(
        "The server cannot sign ID tokens for this client right now.",
        error="temporarily_unavailable",
        redirect_uri=grant.redirect_uri,
        state=request.args.get("state"),
    )


def _after_login_url() -> str:
    """This request again, minus what the fresh login satisfies (prompt=login, max_age)."""
    if pushed_request_url():
        return pushed_request_url()
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

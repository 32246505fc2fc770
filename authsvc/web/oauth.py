"""Protocol endpoints: authorize (with login and consent), token, revoke,
introspect, userinfo and logout. Each view translates HTTP to the protocol
layer; the decisions live in ``authorize.py`` and in ``authsvc.oauth``.
"""

from urllib.parse import urlencode

from flask import Blueprint
from flask import jsonify
from flask import make_response
from flask import redirect
from flask import render_template
from flask import request

from ..events import security_event
from ..oauth.claims import user_claims
from ..oauth.dpop import ALGORITHMS as DPOP_ALGORITHMS
from ..oauth.endpoints import own_endpoint_claims
from ..oauth.errors import OAuth2Error
from . import cors
from . import forms
from . import server
from . import services
from . import sessions
from .authorize import authorize_request
from .errors import error_response
from .par import push_request
from .par import use_pushed_request

bp = Blueprint("oauth", __name__)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize():
    if request.method == "POST" and not request.args:
        # OIDC Core §3.1.2.1: a POSTed authorization request continues as the GET it
        # equals, since the login and consent steps carry the request in the URL.
        return redirect("/authorize?" + urlencode(list(request.form.items(multi=True))), code=303)
    # Repeated, over-long or NUL-bearing parameters end here, on an HTML page (RFC 6749 §3.1).
    forms.check_params(request.args)
    use_pushed_request()
    return authorize_request()


@bp.post("/token")
def token():
    forms.check_form_post()
    return server().create_token_response()


@bp.post("/revoke")
def revoke():
    forms.check_form_post()
    return server().create_endpoint_response("revocation")


@bp.post("/introspect")
def introspect():
    forms.check_form_post()
    return server().create_endpoint_response("introspection")


@bp.post("/device_authorization")
def device_authorization():
    """RFC 8628 §3.1: a device asks for a device code and a user code."""
    forms.check_form_post()
    return server().create_endpoint_response("device_authorization")


@bp.post("/par")
def pushed_authorization_request():
    """RFC 9126 §2: store an authorization request; the browser then brings only its request_uri."""
    return push_request()


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo():
    """OIDC Core §5.3: the claims the access token's scopes allow; token in the header only.

    Bearer (RFC 6750 §2.1), or DPoP with a proof for a DPoP-bound token (RFC 9449 §7).
    """
    svc = services()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    scheme = scheme.lower()
    if "access_token" in request.values:
        return bearer_error(400, "invalid_request", "Send the access token in the Authorization header only.")
    if scheme not in ("bearer", "dpop") or not token.strip():
        return bearer_error(401, None, None)
    claims = own_endpoint_claims(svc, token.strip())
    if claims is not None:
        cors.set_token_client(claims["client_id"])
    if claims is None or svc.revocations.is_token_revoked(claims):
        return bearer_error(401, "invalid_token", "The access token is invalid, expired or revoked.")
    url = svc.settings.issuer + "/userinfo"
    dpop = server().dpop
    refused = dpop.check_resource_request(request.headers, request.method, url, scheme, token.strip(), claims)
    if refused is not None:
        # RFC 9449 §9: the nonce to put in the next proof comes with the refusal.
        return dpop_error(*refused, nonce=dpop.nonces.current() if refused[0] == "use_dpop_nonce" else None)
    if "openid" not in claims.get("scope", "").split():
        return bearer_error(403, "insufficient_scope", "The access token lacks the openid scope.")
    user = server().load_active_user(claims["sub"])
    if user is None:
        return bearer_error(401, "invalid_token", "The access token does not belong to an active user.")
    return jsonify(user_claims(user, claims["scope"]))


def bearer_error(status, error, description):
    """RFC 6750 §3: the WWW-Authenticate challenge."""
    challenge = 'Bearer realm="authsvc"'
    if error:
        challenge += f', error="{error}", error_description="{description}"'
    body = {"error": error or "invalid_request", "error_description": description or "A Bearer token is required."}
    return jsonify(body), status, {"WWW-Authenticate": challenge}


def dpop_error(error, description, nonce=None):
    """RFC 9449 §7.1: a DPoP-bound token's refusal, in the DPoP scheme (with a ``DPoP-Nonce`` to use, §9)."""
    challenge = f'DPoP error="{error}", error_description="{description}", algs="{" ".join(DPOP_ALGORITHMS)}"'
    headers = {"WWW-Authenticate": challenge}
    if nonce is not None:
        headers["DPoP-Nonce"] = nonce
    return jsonify({"error": error, "error_description": description}), 401, headers


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """RP-Initiated Logout 1.0: end the session, then redirect only to a registered URI."""
    srv, s = server(), sessions()
    login = s.current()
    try:
        end = srv.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return error_response(400, error.error, error.get_error_description() or "Invalid logout request.")
    hinted_sid = (end.id_token_claims or {}).get("sid")
    # A genuine hint for another session (anyone can get one for their own
    # account) must not sign this browser out from a link: ask, as without a hint.
    confirm = end.needs_confirmation or (login is not None and hinted_sid != login.sid)
    if request.method == "GET" and confirm:
        return render_page("logout.html", login, params=request.args.items(multi=False))
    if confirm and not s.check_csrf(login):
        return error_response(400, "invalid_request", "The sign-out form expired. Please try again.")
    response = srv.create_endpoint_response("end_session", end)
    if response is None:
        response = make_response(render_template("logged_out.html"))
    client_id = end.client.get_client_id() if end.client is not None else None
    if hinted_sid and (login is None or login.sid != hinted_sid):
        services().revocations.end_session(hinted_sid)
        security_event("logout", sid=hinted_sid, sub=end.id_token_claims.get("sub"), client_id=client_id)
    s.end(response, login)
    if login is not None:
        security_event("logout", sid=login.sid, sub=login.user.sub, client_id=client_id)
    return response


def render_page(template, login, status=200, **context):
    """Render a page carrying a CSRF token bound to this browser."""
    s = sessions()
    binding = s.csrf_binding(login)
    response = make_response(
        render_template(template, csrf_token=s.csrf_token(binding), login=login, **context), status
    )
    if binding.startswith("pre:"):
        s.ensure_presession(response, binding.removeprefix("pre:"))
    return response

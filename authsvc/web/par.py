"""Pushed authorization requests over HTTP (RFC 9126): the ``/par`` view, and
how ``/authorize`` acts on a ``request_uri``. The rules live in ``authsvc.oauth.par``.
"""

from urllib.parse import urlencode

from flask import g
from flask import request
from werkzeug.datastructures import ImmutableMultiDict

from ..oauth import par
from ..oauth.errors import OAuth2Error
from . import forms
from . import server
from . import services


def push_request():
    """POST /par: 201 with the request_uri, or the token endpoint's JSON errors (§2.2, §2.3)."""
    forms.check_form_post()
    srv = server()
    oauth_request = srv.create_oauth2_request(None)
    try:
        body = par.push(srv, oauth_request)
    except OAuth2Error as error:
        return srv.handle_error_response(oauth_request, error)
    return srv.handle_response(201, body, [("Content-Type", "application/json")])


def use_pushed_request() -> None:
    """When /authorize names a request_uri, make the pushed parameters the request's arguments.

    Everything after this (our checks and Authlib's) reads ``request.args``
    and ``request.values``, so swapping them here keeps one code path for
    pushed and plain requests. The URL itself (``request.full_path``, which
    the consent form posts back to) keeps only client_id and request_uri.
    """
    pushed = par.pushed_for_authorize(services(), request.args)
    if pushed is None:
        return
    g.pushed_request = pushed
    g.pushed_request_url = "/authorize?" + urlencode(
        {"client_id": pushed.client_id, "request_uri": request.args["request_uri"]}
    )
    request.args = ImmutableMultiDict(list(pushed.params.items()))
    request.__dict__.pop("values", None)  # rebuilt from the new args on next use


def pushed_request_url() -> str | None:
    """Where the login page returns to for a pushed request: the short URL, never the parameters."""
    return g.get("pushed_request_url")


def login_is_fresh(login) -> bool:
    """True when the user signed in after the request was pushed.

    A plain request's return URL drops ``prompt=login`` and ``max_age`` once the
    user has signed in; a pushed request cannot be edited, so a sign-in at or
    after the push is what satisfies them (else the login page would loop).
    """
    pushed = g.get("pushed_request")
    return pushed is not None and login is not None and login.auth_time >= int(par.pushed_at(pushed))


def consume_pushed_request(redirect_uri: str, state: str | None) -> OAuth2Error | None:
    """Use up the pushed request before its one authorization response; the error when that fails."""
    pushed = g.get("pushed_request")
    if pushed is None or par.consume(services(), pushed):
        return None
    return par.InvalidRequestUriError(
        "This request was completed already or has expired. Start again at the app.",
        redirect_uri=redirect_uri,
        state=state,
    )

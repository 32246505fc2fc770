"""The one place where exceptions become responses.

OAuth errors are JSON with their RFC status; the pages (authorize, login,
logout) answer with an HTML error page instead; a store or key-ring outage is
a 503 with ``Retry-After``; a body whose framing the server cannot parse is
a 400 (see ``framing``); anything unexpected is a 500 without detail (the
traceback goes to the log, never to the client).
"""

import logging

from flask import jsonify
from flask import render_template
from flask import request
from werkzeug.exceptions import HTTPException

from ..errors import KeyRingError
from ..errors import StoreUnavailable
from ..oauth.errors import OAuth2Error
from .framing import guard_body_reads

log = logging.getLogger(__name__)

PAGES = ("/authorize", "/login", "/logout", "/device", "/account")


def wants_page() -> bool:
    return request.path.rstrip("/") in PAGES or request.path == "/"


def error_response(status: int, error: str, description: str, headers=None):
    if wants_page():
        response = render_template("error.html", title=_TITLES.get(status, "Something went wrong"), message=description)
        return response, status, headers or {}
    response = jsonify(error=error, error_description=description)
    return response, status, headers or {}


_TITLES = {400: "This request cannot be completed", 404: "Page not found", 503: "Temporarily unavailable"}


def init_app(app) -> None:
    app.wsgi_app = guard_body_reads(app.wsgi_app)

    @app.errorhandler(OAuth2Error)
    def oauth_error(error):
        return error_response(error.status_code or 400, error.error, error.get_error_description() or error.error)

    @app.errorhandler(StoreUnavailable)
    @app.errorhandler(KeyRingError)
    def unavailable(error):
        log.error("%s: %s", type(error).__name__, error)
        return error_response(
            503, "temporarily_unavailable", "The service is temporarily unavailable.", {"Retry-After": "5"}
        )

    @app.errorhandler(ValueError)
    @app.errorhandler(UnicodeError)
    def bad_value(error):
        # Raised by input validation below the web layer (a NUL byte, an over-long field).
        return error_response(400, "invalid_request", _safe(str(error)))

    @app.errorhandler(HTTPException)
    def http_error(error):
        error_code = {401: "invalid_token", 405: "invalid_request", 413: "invalid_request"}.get(
            error.code, "invalid_request"
        )
        if error.code == 404:
            error_code = "not_found"
        response = error_response(error.code, error_code, _safe(error.description or error.name))
        if error.code == 405:
            response[2]["Allow"] = ", ".join(error.valid_methods or ())
        return response

    @app.errorhandler(Exception)
    def unexpected(error):
        # %r: the path is the client's, and a CR or LF in it must not start a new log line.
        log.exception("unexpected error on %s %r", request.method, request.path)
        return error_response(500, "server_error", "The server could not handle this request.")


def _safe(text: str) -> str:
    """Keep error descriptions to RFC 6749's printable ASCII and short."""
    cleaned = "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)
    return cleaned[:200] or "Invalid request."

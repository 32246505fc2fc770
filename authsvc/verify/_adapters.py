"""HTTP adapters: a Flask decorator and a plain WSGI middleware, answering per RFC 6750.

Both read the token from the ``Authorization: Bearer`` header only. A token in the query
string or a form body is an authentication method this resource server does not support,
so such a request counts as carrying no token (RFC 6750 §3.1: a bare ``Bearer`` challenge,
no error code) and the token is never looked at; query strings end up in access logs.
Flask is imported inside ``require_token``, so a WSGI-only service never loads it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from ._claims import as_scopes
from ._exceptions import InsufficientScope
from ._exceptions import InvalidToken
from ._exceptions import MalformedToken
from ._verifier import TokenVerifier

#: Characters RFC 6750 §3 allows inside error_description and scope.
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


class _NoToken(InvalidToken):
    """The request carries no bearer token in the Authorization header."""

    # Only in the body: the challenge itself carries no error code (RFC 6750 §3.1).
    error = "invalid_request"
    default_description = "a bearer token is required in the Authorization header"


def authenticate(verifier: TokenVerifier, authorization: str | None, scopes: tuple[str, ...]) -> dict[str, Any]:
    """Return the claims of the bearer token in an Authorization header value, or raise."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    # The auth-scheme is case-insensitive (RFC 9110 §11.1); any other scheme means no token.
    if scheme.lower() != "bearer":
        raise _NoToken()
    token = token.strip()
    if not token:
        raise MalformedToken("the Bearer credentials are empty")
    return verifier.verify(token, scopes=scopes)


def error_response(exc: InvalidToken) -> tuple[int, list[tuple[str, str]], bytes]:
    """Return ``(status, headers, body)`` for a refused request (RFC 6750 §3)."""
    description = _UNSAFE.sub("?", exc.description)
    body = json.dumps({"error": exc.error, "error_description": description}).encode()
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    if isinstance(exc, _NoToken):
        headers.append(("WWW-Authenticate", "Bearer"))
    elif exc.status_code == 503:
        headers.append(("Retry-After", "5"))
    else:
        challenge = f'Bearer error="{exc.error}", error_description="{description}"'
        if isinstance(exc, InsufficientScope):
            scope = _UNSAFE.sub("?", " ".join(exc.scopes))
            challenge += f', scope="{scope}"'
        headers.append(("WWW-Authenticate", challenge))
    return exc.status_code, headers, body


def require_token(verifier: TokenVerifier, scopes: str | Iterable[str] = ()) -> Callable:
    """Decorate a Flask view: verify the bearer token and put its claims on ``flask.g.token``."""
    import flask  # only Flask users pay for it

    required = as_scopes(scopes)

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                claims = authenticate(verifier, flask.request.headers.get("Authorization"), required)
            except InvalidToken as exc:
                status, headers, body = error_response(exc)
                return flask.Response(body, status=status, headers=headers)
            flask.g.token = claims
            return view(*args, **kwargs)

        return wrapper

    return decorator


class VerifierMiddleware:
    """WSGI middleware: refuse requests without a valid token, else set ``environ["authsvc.token"]``."""

    def __init__(self, app: Callable, verifier: TokenVerifier, scopes: str | Iterable[str] = ()) -> None:
        self.app = app
        self.verifier = verifier
        self.scopes = as_scopes(scopes)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        try:
            claims = authenticate(self.verifier, environ.get("HTTP_AUTHORIZATION"), self.scopes)
        except InvalidToken as exc:
            status, headers, body = error_response(exc)
            start_response(f"{status} {HTTPStatus(status).phrase}", [*headers, ("Content-Length", str(len(body)))])
            return [body]
        environ["authsvc.token"] = claims
        return self.app(environ, start_response)

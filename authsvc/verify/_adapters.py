"""HTTP adapters: a Flask decorator and a plain WSGI middleware, answering per RFC 6750 and RFC 9449.

Both read the token from the ``Authorization`` header only: ``Bearer <token>``, or
``DPoP <token>`` with the request's ``DPoP`` proof header (RFC 9449 §7.1), checked against
the request's method and URL. The URL is the one the request names (Host, scheme, path);
behind a proxy that rewrites them, pass ``base_url`` (the scheme://host[:port] clients
use) so the proof's ``htu`` is compared with what the client actually called.

A token in the query string or a form body is an authentication method this resource
server does not support, so such a request counts as carrying no token (RFC 6750 §3.1: a
bare ``Bearer`` challenge, no error code) and the token is never looked at; query strings
end up in access logs.
Flask is imported inside ``require_token``, so a WSGI-only service never loads it.
"""

from __future__ import annotations

import functools
import json
import re
import wsgiref.util
from collections.abc import Callable
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from ._claims import as_scopes
from ._dpop import ALGS_CHALLENGE
from ._dpop import DPoPBindingError
from ._exceptions import InsufficientScope
from ._exceptions import InvalidDPoPProof
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


#: RFC 9449 §7.1: the challenge of the DPoP scheme names the proof algorithms accepted.
_DPOP_ALGS = f'algs="{ALGS_CHALLENGE}"'


def authenticate(
    verifier: TokenVerifier,
    authorization: str | None,
    scopes: tuple[str, ...],
    dpop: str | None = None,
    method: str | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """Return the claims of the token in an Authorization header value, or raise.

    ``dpop`` is the request's ``DPoP`` header (several headers joined by commas, as WSGI
    servers join them), ``method`` and ``url`` the request's own.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    # The auth-scheme is case-insensitive (RFC 9110 §11.1); any other scheme means no token.
    scheme = scheme.lower()
    if scheme not in ("bearer", "dpop"):
        raise _NoToken()
    token = token.strip()
    if not token:
        raise MalformedToken(f"the {'Bearer' if scheme == 'bearer' else 'DPoP'} credentials are empty")
    if scheme == "bearer":
        return verifier.verify(token, scopes=scopes)
    # RFC 9449 §4.3 step 1: exactly one proof. A comma never occurs in a compact JWS.
    if not dpop or "," in dpop:
        raise InvalidDPoPProof("send exactly one DPoP proof header with the DPoP scheme")
    return verifier.verify(token, scopes=scopes, dpop_proof=dpop.strip(), method=method, url=url)


def error_response(exc: InvalidToken, scheme: str = "bearer") -> tuple[int, list[tuple[str, str]], bytes]:
    """Return ``(status, headers, body)`` for a refused request (RFC 6750 §3, RFC 9449 §7.1).

    ``scheme`` is the one the request used: its errors are answered in that scheme, and
    errors of a DPoP binding in the DPoP scheme whatever the request used.
    """
    description = _UNSAFE.sub("?", exc.description)
    body = json.dumps({"error": exc.error, "error_description": description}).encode()
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    if isinstance(exc, _NoToken):
        # Both schemes are offered (RFC 9449 §7.1): one challenge per header field.
        headers.append(("WWW-Authenticate", "Bearer"))
        headers.append(("WWW-Authenticate", f"DPoP {_DPOP_ALGS}"))
    elif exc.status_code == 503:
        headers.append(("Retry-After", "5"))
    else:
        dpop = scheme == "dpop" or isinstance(exc, (InvalidDPoPProof, DPoPBindingError))
        challenge = f'{"DPoP" if dpop else "Bearer"} error="{exc.error}", error_description="{description}"'
        if isinstance(exc, InsufficientScope):
            scope = _UNSAFE.sub("?", " ".join(exc.scopes))
            challenge += f', scope="{scope}"'
        if dpop:
            challenge += f", {_DPOP_ALGS}"
        headers.append(("WWW-Authenticate", challenge))
    return exc.status_code, headers, body


def _scheme(authorization: str | None) -> str:
    return (authorization or "").strip().partition(" ")[0].lower()


def _joined(values: list[str]) -> str | None:
    # Several DPoP headers arrive as one comma-joined value from WSGI servers; keep it so.
    return ",".join(values) if values else None


def require_token(
    verifier: TokenVerifier, scopes: str | Iterable[str] = (), *, base_url: str | None = None
) -> Callable:
    """Decorate a Flask view: verify the Bearer or DPoP token and put its claims on ``flask.g.token``."""
    import flask  # only Flask users pay for it

    required = as_scopes(scopes)

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = flask.request
            authorization = request.headers.get("Authorization")
            try:
                claims = authenticate(
                    verifier,
                    authorization,
                    required,
                    dpop=_joined(request.headers.getlist("DPoP")),
                    method=request.method,
                    url=base_url.rstrip("/") + request.script_root + request.path if base_url else request.base_url,
                )
            except InvalidToken as exc:
                status, headers, body = error_response(exc, _scheme(authorization))
                return flask.Response(body, status=status, headers=headers)
            flask.g.token = claims
            return view(*args, **kwargs)

        return wrapper

    return decorator


class VerifierMiddleware:
    """WSGI middleware: refuse requests without a valid token, else set ``environ["authsvc.token"]``."""

    def __init__(
        self,
        app: Callable,
        verifier: TokenVerifier,
        scopes: str | Iterable[str] = (),
        *,
        base_url: str | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.scopes = as_scopes(scopes)
        self.base_url = base_url

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        authorization = environ.get("HTTP_AUTHORIZATION")
        try:
            claims = authenticate(
                self.verifier,
                authorization,
                self.scopes,
                dpop=environ.get("HTTP_DPOP"),
                method=environ.get("REQUEST_METHOD"),
                url=self._url(environ),
            )
        except InvalidToken as exc:
            status, headers, body = error_response(exc, _scheme(authorization))
            start_response(f"{status} {HTTPStatus(status).phrase}", [*headers, ("Content-Length", str(len(body)))])
            return [body]
        environ["authsvc.token"] = claims
        return self.app(environ, start_response)

    def _url(self, environ: dict[str, Any]) -> str:
        if self.base_url is None:
            return wsgiref.util.request_uri(environ, include_query=False)
        path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), encoding="latin1")
        return self.base_url.rstrip("/") + (path or "/")

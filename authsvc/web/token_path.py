"""``POST /token`` for a plain client-credentials request, in front of Flask.

A service's token request is the issuer's hottest path. Profiled under
gunicorn, Flask's request context, routing and hooks, with Authlib's dispatch,
cost several times the signature itself. ``ClientCredentialsPath`` is WSGI
middleware that recognises the plain request (a small form body with only
``grant_type=client_credentials`` and optionally ``scope`` and ``resource``,
each once; Basic credentials; no query string, ``Origin`` or ``DPoP`` header)
and asks ``oauth.client_credentials`` for the token. Everything else, and any
request that protocol module does not answer with a token, goes to the Flask
app unchanged, body included: errors have one implementation, the full one.

The answer carries what the full path's would: the no-store headers, the
security headers, ``Vary: Origin``, a DPoP nonce when nonces are required,
and the same Prometheus counts. The request id and the access log come from
the layers around both paths.
"""

import io
import json
import time
from urllib.parse import parse_qsl

from ..errors import AuthsvcError
from ..oauth.client_auth import basic_credentials
from ..oauth.client_credentials import PARAMETERS
from ..oauth.client_credentials import plain_token_response
from ..oauth.errors import OAuth2Error
from .forms import FORM_TYPE
from .forms import MAX_PARAM_CHARS
from .headers import DEFAULTS as SECURITY_HEADERS
from .metrics import children_for

PATH = "/token"
# grant_type=client_credentials&scope=…&resource=…: a plain request is far smaller.
MAX_BODY = 4 * 1024
_HEADERS = (
    ("Content-Type", "application/json"),
    ("Pragma", "no-cache"),
    *SECURITY_HEADERS,
    ("Vary", "Origin"),
)
# Requests carrying any of these need what only the full path does (CORS, DPoP, body framing).
_FULL_PATH_HEADERS = ("HTTP_ORIGIN", "HTTP_DPOP", "HTTP_TRANSFER_ENCODING")


class ReplayedBody:
    """The request body as far as it was read, then whatever the read raised, for the full path to judge."""

    def __init__(self, data: bytes, error: Exception | None = None):
        self._data = io.BytesIO(data)
        self._error = error

    def read(self, size=-1):
        return self._then_error(self._data.read(size), size)

    def readline(self, size=-1):
        return self._then_error(self._data.readline(size), size)

    def _then_error(self, data: bytes, size) -> bytes:
        if not data and size != 0 and self._error is not None:
            raise self._error
        return data


class ClientCredentialsPath:
    """WSGI middleware: plain client-credentials token requests here, the rest to ``full_app``."""

    def __init__(self, full_app, server, services):
        self.full_app = full_app
        self._server = server
        self._services = services
        self._counter, self._latency = children_for(PATH, 200)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.full_app(environ, start_response)
        started = time.perf_counter()
        token = self._try(environ)
        if token is None:
            return self.full_app(environ, start_response)
        body = json.dumps(token).encode()
        headers = [*_HEADERS, ("Content-Length", str(len(body))), *self._server.dpop.response_headers()]
        start_response("200 OK", headers)
        self._counter.inc()
        self._latency.observe(time.perf_counter() - started)
        return [body]

    def _try(self, environ) -> dict | None:
        """The token for a plain request; None (with the body put back) for the full path."""
        if environ.get("QUERY_STRING") or any(name in environ for name in _FULL_PATH_HEADERS):
            return None
        if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != FORM_TYPE:
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not (length.isascii() and length.isdigit() and 0 < int(length) <= MAX_BODY):
            return None
        body = self._read(environ, int(length))
        if body is None:
            return None
        params = _plain_form(body)
        if params is None:
            return None
        try:
            credentials = basic_credentials(environ.get("HTTP_AUTHORIZATION"))
        except OAuth2Error:
            return None
        if credentials is None:
            return None
        # Started on the first request by the full path's hooks; a worker may see only requests like this.
        self._services.start_housekeeping()
        if self._services.logout_sender is not None:
            self._services.logout_sender.start()
        try:
            return plain_token_response(self._server, *credentials, params)
        except AuthsvcError:
            # Store or key ring unavailable: the full path answers 503 and logs it.
            return None

    @staticmethod
    def _read(environ, length: int) -> bytes | None:
        stream = environ["wsgi.input"]
        try:
            body = stream.read(length)
        except Exception as error:  # noqa: BLE001 - whatever the server raised, the full path reports
            environ["wsgi.input"] = ReplayedBody(b"", error)
            return None
        environ["wsgi.input"] = ReplayedBody(body)
        # A short body (the client closed early) is the full path's to refuse.
        return body if len(body) == length else None


def _plain_form(body: bytes) -> dict[str, str] | None:
    """The form's parameters when each is known, present once, non-empty, short and NUL-free; else None."""
    if not body.isascii():
        return None
    try:
        pairs = parse_qsl(
            body.decode("ascii"), keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=3
        )
    except ValueError:
        return None
    params = dict(pairs)
    if len(params) != len(pairs) or not params.keys() <= PARAMETERS:
        return None
    for value in params.values():
        if not value or len(value) > MAX_PARAM_CHARS or "\x00" in value:
            return None
    return params

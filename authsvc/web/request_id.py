"""A request id for every request: in the response (``X-Request-Id``), in every log line, in the access log.

An ``X-Request-Id`` the request carries is kept only when the socket peer is
a trusted proxy (AUTHSVC_TRUSTED_PROXIES) and the value is short and plain
(up to 128 of ``A-Z a-z 0-9 . _ -``): a balancer's id then follows the
request through both logs. Anyone else could otherwise pick the id their
requests are logged under, or write what they like into the log. In every
other case the id is generated here.
"""

import re
import uuid

from ..logs import current_request_id

HEADER = "X-Request-Id"
ENVIRON_KEY = "authsvc.request_id"
_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")


class RequestId:
    """WSGI middleware; outermost, so that ``REMOTE_ADDR`` is still the socket peer when it looks."""

    def __init__(self, app, is_trusted_proxy=None):
        self.app = app
        self.is_trusted_proxy = is_trusted_proxy

    def __call__(self, environ, start_response):
        request_id = self.request_id(environ)
        environ[ENVIRON_KEY] = request_id

        def start_with_id(status, headers, exc_info=None):
            headers = [(name, value) for name, value in headers if name.lower() != "x-request-id"]
            headers.append((HEADER, request_id))
            return start_response(status, headers, exc_info)

        token = current_request_id.set(request_id)
        try:
            return self.app(environ, start_with_id)
        finally:
            current_request_id.reset(token)

    def request_id(self, environ) -> str:
        given = environ.get("HTTP_X_REQUEST_ID", "")
        if (
            given
            and self.is_trusted_proxy is not None
            and self.is_trusted_proxy(environ.get("REMOTE_ADDR"))
            and _SANE.fullmatch(given)
        ):
            return given
        return uuid.uuid4().hex

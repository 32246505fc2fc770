"""The access log as WSGI middleware, for servers whose own log is not ours (granian).

One line per request once its response is sent, in the shape gunicorn's
access log has under authsvc (``gunicorn_config``): the client address,
method, path (never the query: it can carry tokens), status, bytes, time and
request id, every field escaped in text; named fields in JSON.
"""

import logging
import time

from ..logs import escape_log_text
from .request_id import ENVIRON_KEY as REQUEST_ID_KEY

log = logging.getLogger("authsvc.access")


class AccessLog:
    """WSGI middleware writing one access-log line per request to ``authsvc.access``."""

    def __init__(self, app, *, json_fields: bool):
        self.app = app
        self.json_fields = json_fields

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        status = []

        def start(status_line, headers, exc_info=None):
            status[:] = [status_line]
            return start_response(status_line, headers, exc_info)

        body = self.app(environ, start)
        if isinstance(body, list):
            # Complete already (the token shortcut's answer): logged now, and the server keeps its fast path for lists.
            self.write(environ, status[0] if status else "500", sum(map(len, body)), started)
            return body
        return _Logged(body, self, environ, status, started)

    def write(self, environ, status_line: str, sent: int, started: float) -> None:
        status = status_line.split(" ", 1)[0]
        fields = {
            "method": environ.get("REQUEST_METHOD"),
            "path": environ.get("PATH_INFO"),
            "status": int(status) if status.isdigit() else None,
            "bytes": sent,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "request_id": environ.get(REQUEST_ID_KEY),
            "remote_addr": environ.get("REMOTE_ADDR"),
        }
        if self.json_fields:
            log.info("%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields)
            return
        text = [escape_log_text(str(fields[name] if fields[name] is not None else "-")) for name in fields]
        method, path, status, sent_text, duration, request_id, remote = text
        log.info(
            '%s "%s %s" %s %s %sms %s',
            remote,
            method,
            path,
            status,
            sent_text,
            round(fields["duration_ms"]),
            request_id,
        )


class _Logged:
    """The response body, passed through; the line is written when the server closes it (the response is sent)."""

    def __init__(self, body, access_log: AccessLog, environ, status: list, started: float):
        self._body = body
        self._access_log = access_log
        self._environ = environ
        self._status = status
        self._started = started
        self._sent = 0

    def __iter__(self):
        for chunk in self._body:
            self._sent += len(chunk)
            yield chunk

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            status = self._status[0] if self._status else "500"
            self._access_log.write(self._environ, status, self._sent, self._started)

"""A request body that cannot be read is the client's error: 400, never 500.

The WSGI server parses the body's framing (chunk sizes, chunk terminators,
trailers, Content-Length) lazily, while the application reads
``wsgi.input``. gunicorn reports a broken frame by raising its own
``ParseException`` subclasses (``InvalidChunkSize``,
``ChunkMissingTerminator``, ``InvalidChunkExtension``…) from that read, deep
inside ``request.form``. Werkzeug turns only ``OSError`` and ``ValueError``
from the stream into a 400, so those reached the catch-all handler as a 500.

A body that ends before its ``Content-Length`` (the client closed its side)
is incomplete (RFC 9112 §8) but reads as a shorter body: gunicorn returns
what arrived, and Werkzeug trusts a server that sets
``wsgi.input_terminated``. It would be processed as if complete.

``guard_body_reads`` wraps ``wsgi.input`` once, for every endpoint and any
server: whatever a read raises, and an end of data before ``Content-Length``
bytes, becomes ``MalformedBody``, a 400 that the error handlers render as
OAuth JSON (``invalid_request``) or as the HTML error page.
"""

import logging

from werkzeug.exceptions import BadRequest

log = logging.getLogger(__name__)


class MalformedBody(BadRequest):
    description = "The request body is malformed."


class GuardedInput:
    """``wsgi.input`` whose read errors, and a premature end, are reported as ``MalformedBody``."""

    def __init__(self, stream, content_length: int | None):
        self._stream = stream
        # Bytes the request promised and has not delivered yet; None: framed by the server (chunked).
        self._missing = content_length

    def read(self, size=-1):
        data = self._guard(self._stream.read, size)
        # read() and read(-1) return the whole rest: anything still missing will not come.
        return self._counted(data, at_end=size is None or size < 0 or (size > 0 and not data))

    def readline(self, size=-1):
        data = self._guard(self._stream.readline, size)
        return self._counted(data, at_end=size != 0 and not data)

    def readlines(self, hint=-1):
        lines = []
        while line := self.readline():
            lines.append(line)
            if 0 < hint <= sum(map(len, lines)):
                break
        return lines

    def __iter__(self):
        while line := self.readline():
            yield line

    def _guard(self, read, size):
        try:
            return read(size)
        except Exception as exc:
            _refuse(type(exc).__name__, exc)

    def _counted(self, data: bytes, *, at_end: bool) -> bytes:
        if self._missing is not None:
            self._missing -= len(data)
            if at_end and self._missing > 0:
                _refuse("body shorter than Content-Length")
        return data


def _refuse(reason: str, cause: Exception | None = None):
    # The reason only: an exception's message may quote bytes the client sent.
    log.info("malformed request body: %s", reason)
    raise MalformedBody() from cause


def _content_length(environ) -> int | None:
    value = environ.get("CONTENT_LENGTH", "")
    return int(value) if value.isascii() and value.isdigit() else None


def guard_body_reads(wsgi_app):
    """Wrap ``wsgi_app`` so that every request's ``wsgi.input`` is a ``GuardedInput``."""

    def app(environ, start_response):
        stream = environ.get("wsgi.input")
        if stream is not None:
            environ["wsgi.input"] = GuardedInput(stream, _content_length(environ))
        return wsgi_app(environ, start_response)

    return app

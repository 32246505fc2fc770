"""Log output: one format (AUTHSVC_LOG_FORMAT, ``text`` or ``json``) for every record, and the request id.

``json`` writes one JSON object per line through python-json-logger: the
time, level, logger and message, then every field the record carries as a
top-level key (a security event's ``event``, ``client_id``, ``sub``…, the
access log's ``method``, ``status``…). ``text`` writes one line per record,
with control characters escaped so that no value can start a forged line.

The web layer sets ``current_request_id`` for the duration of a request;
``RequestIdFilter`` copies it onto every record written meanwhile, whichever
logger wrote it.
"""

import logging
import os
import re
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("text", "json")
# gunicorn's own date format, so app and server lines read alike.
TEXT_DATEFMT = "[%Y-%m-%d %H:%M:%S %z]"
TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"

current_request_id: ContextVar[str | None] = ContextVar("authsvc_request_id", default=None)

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def log_format_from_env(environ=None) -> str:
    """AUTHSVC_LOG_FORMAT, or ``text`` when unset or unknown (``Settings`` reports an unknown value)."""
    value = ((os.environ if environ is None else environ).get("AUTHSVC_LOG_FORMAT") or "").strip()
    return value if value in FORMATS else "text"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records written while a request is handled (and leaves other records alone)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            request_id = current_request_id.get()
            if request_id is not None:
                record.request_id = request_id
        return True


class TextFormatter(logging.Formatter):
    """One line per record: control characters in the message are written as ``\\xHH``, request id appended."""

    def __init__(self):
        super().__init__(TEXT_FORMAT, TEXT_DATEFMT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = _CONTROL.sub(_escape, super().formatMessage(record))
        request_id = getattr(record, "request_id", None)
        return f"{line} request_id={request_id}" if request_id else line


def _escape(match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def json_formatter() -> logging.Formatter:
    """time, level, logger, message, then the record's own fields; ASCII only, so one object is one line."""
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
    )


def formatter(log_format: str) -> logging.Formatter:
    return json_formatter() if log_format == "json" else TextFormatter()


def formatter_from_env() -> logging.Formatter:
    """The formatter AUTHSVC_LOG_FORMAT asks for (a ``logging.config`` factory for servers' own lines)."""
    return formatter(log_format_from_env())


def configure(log_format: str, stream=None) -> logging.Handler:
    """Send every record (authsvc's from INFO up, others' from WARNING up) to ``stream`` (stderr) in ``log_format``.

    Calling it again replaces the handler it installed before (gunicorn sets
    its loggers up again on SIGHUP). Returns the handler.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_authsvc", False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestIdFilter())
    handler._authsvc = True
    root.addHandler(handler)
    logging.getLogger("authsvc").setLevel(logging.INFO)
    return handler


# Printable ASCII except the quote (it delimits fields) and the backslash (it starts an escape).
_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def escape_log_text(text: str) -> str:
    """``text`` with every character but printable ASCII written as ``\\xHH`` (``\\uHHHH`` above 0xFF).

    WSGI decodes the path as Latin-1, so a UTF-8 path logs as its bytes,
    as nginx and Apache write them.
    """
    return _UNSAFE.sub(_escape_char, text)


def _escape_char(match) -> str:
    code = ord(match.group())
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"

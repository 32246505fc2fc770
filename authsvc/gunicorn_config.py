"""gunicorn settings for ``python -m authsvc serve`` (also ``gunicorn -c gunicorn.conf.py``).

Workers default to the number of cores, which measured best here: token
signing is CPU-bound, and each worker keeps its own key objects and pool.
"""

import os
import re
import shutil
import sys
import tempfile

from gunicorn.glogging import Logger

bind = os.environ.get("AUTHSVC_BIND") or "127.0.0.1:8000"
workers = int(os.environ.get("AUTHSVC_WORKERS") or os.cpu_count() or 2)
worker_class = "gthread"
threads = 4
# Store statements time out after 5 s, well inside this, so a slow database
# ends a request with a 503 rather than a killed worker.
timeout = 30
graceful_timeout = 20
keepalive = 5
wsgi_app = "wsgi:app"
# The path only (%(U)s), never the query: /logout?id_token_hint=… must not reach a log.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
# Every field of an access-log line is escaped (see EscapingLogger).
logger_class = "authsvc.gunicorn_config.EscapingLogger"
errorlog = "-"
# gunicorn's control socket defaults to one path per user, which several
# instances on one host would fight over; authsvc is managed by its own CLI.
control_socket_disable = True


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


class EscapingLogger(Logger):
    """gunicorn's logger, with every access-log field escaped.

    ``%(U)s`` is the percent-decoded path, so ``/%0D%0APOST%20/token…`` would
    otherwise end the line and write a forged one after it; a header (``%(a)s``,
    ``%({name}i)s``) could carry an ESC sequence for the terminal reading the log.
    """

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {name: escape_log_text(value) if isinstance(value, str) else value for name, value in atoms.items()}


def on_starting(server):
    """Check settings and the key ring once, before any worker starts; start the metrics listener."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if here not in sys.path:
        sys.path.insert(0, here)
    from authsvc.config import Settings
    from authsvc.errors import AuthsvcError
    from authsvc.services import open_keyring

    try:
        settings = Settings.from_env()
        open_keyring(settings)
    except AuthsvcError as exc:
        print(f"authsvc: {exc}", file=sys.stderr)
        sys.exit(1)
    # Before prometheus_client is first imported: it picks its multiprocess mode at import.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = tempfile.mkdtemp(prefix="authsvc-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        server.cfg.env_orig = getattr(server.cfg, "env_orig", {})
        server._authsvc_metrics_dir = path
    _start_metrics(server, settings)


def _start_metrics(server, settings) -> None:
    """/metrics on AUTHSVC_METRICS_BIND when set; else in the app, behind AUTHSVC_METRICS_TOKEN, or off."""
    if not settings.metrics_bind:
        if not settings.metrics_token:
            server.log.info("/metrics is off: set AUTHSVC_METRICS_BIND or AUTHSVC_METRICS_TOKEN to serve it")
        return
    from authsvc.web import metrics_listener

    try:
        server._authsvc_metrics_listener = metrics_listener.start(settings.metrics_bind, settings.metrics_token)
    except OSError as exc:
        print(f"authsvc: AUTHSVC_METRICS_BIND: cannot listen on {settings.metrics_bind}: {exc}", file=sys.stderr)
        on_exit(server)
        sys.exit(1)
    guarded = " (bearer token required)" if settings.metrics_token else ""
    server.log.info("Metrics at: http://%s%s%s", settings.metrics_bind, metrics_listener.PATH, guarded)


def post_fork(server, worker):
    listener = getattr(server, "_authsvc_metrics_listener", None)
    if listener is not None:
        from authsvc.web import metrics_listener

        metrics_listener.close_in_worker(listener)


def on_exit(server):
    path = getattr(server, "_authsvc_metrics_dir", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)

"""``serve --server granian``: the same app on granian, a Rust HTTP server, instead of gunicorn.

Measured with ``make bench`` on 2 cores, gunicorn's pure-Python HTTP handling
costs more per token request than the app's own work once the
client-credentials path skips the framework, and each keep-alive connection
stays on the worker that accepted it, so a client's whole pool can land on
one worker. granian parses HTTP in Rust, and each worker listens on its own
``SO_REUSEPORT`` socket, so the kernel spreads connections over the workers.

What differs from gunicorn (see docs/reference.md, "Choosing the HTTP server"):
on SIGTERM the workers stop accepting at once and finish the requests in
flight (up to 20 s) instead of first answering ``/readyz`` with "draining";
a stuck request is not ended by a worker timeout; the access log is written
by ``web.access_log`` in the same shape.
"""

import multiprocessing
import os
import sys

TARGET = "authsvc.granian_server:create_worker_app"
# In flight requests get this long after SIGTERM, as gunicorn's graceful_timeout.
GRACEFUL_SECONDS = 20
# WSGI calls run on this many threads per worker: the app holds the GIL while it works,
# so more threads only help requests that wait on the store.
BLOCKING_THREADS = 4


def create_worker_app():
    """The app as each granian worker loads it: with the access log, and no secrets left in the environment.

    granian copies the process environment into every request's WSGI environ;
    the settings have been read by now, so the worker drops them from its own
    environment first (``AUTHSVC_*`` can hold database passwords and keys).
    """
    from . import logs
    from .app import create_app
    from .web.access_log import AccessLog

    log_format = logs.log_format_from_env()
    logs.configure(log_format)
    app = AccessLog(create_app(), json_fields=log_format == "json")
    for name in [name for name in os.environ if name.startswith("AUTHSVC_")]:
        del os.environ[name]
    return app


def main() -> None:
    """``python -m authsvc.granian_server``, as ``serve --server granian`` runs it (settings from the environment)."""
    from .config import Settings
    from .errors import AuthsvcError
    from .services import open_keyring

    try:
        settings = Settings.from_env()
        # Refuse an unusable ring in one line here, before any worker starts.
        open_keyring(settings).close()
    except AuthsvcError as exc:
        sys.exit(f"authsvc: {exc}")
    serve(settings, int(os.environ.get("AUTHSVC_WORKERS") or os.cpu_count() or 2))


def serve(settings, workers: int) -> None:
    """Serve ``settings.bind`` with ``workers`` granian worker processes until SIGTERM or SIGINT."""
    from granian.constants import HTTPModes
    from granian.constants import Interfaces
    from granian.server import Server

    from . import logs
    from .metrics_dir import prepare_metrics_dir

    logs.configure(logs.log_format_from_env())
    try:
        own_metrics_dir = prepare_metrics_dir()
    except OSError as exc:
        sys.exit(f"authsvc: PROMETHEUS_MULTIPROC_DIR: {exc}")
    listener = None
    if settings.metrics_bind:
        from .web import metrics_listener

        try:
            listener = metrics_listener.start(settings.metrics_bind, settings.metrics_token)
        except OSError as exc:
            sys.exit(f"authsvc: AUTHSVC_METRICS_BIND: cannot listen on {settings.metrics_bind}: {exc}")
    # Fresh interpreters: a forked worker would inherit the metrics listener's socket.
    multiprocessing.set_start_method("spawn", force=True)
    host, _, port = settings.bind.rpartition(":")
    server = Server(
        TARGET,
        address=host.strip("[]"),
        port=int(port),
        interface=Interfaces.WSGI,
        factory=True,
        workers=workers,
        blocking_threads=BLOCKING_THREADS,
        http=HTTPModes.http1,
        websockets=False,
        log_dictconfig=_log_config(),
        workers_kill_timeout=GRACEFUL_SECONDS,
        respawn_failed_workers=True,
    )
    try:
        server.serve()
    finally:
        if listener is not None:
            listener.shutdown()
        if own_metrics_dir is not None:
            import shutil

            shutil.rmtree(own_metrics_dir, ignore_errors=True)


def _log_config() -> dict:
    """granian's own lines through authsvc's handler and format (text or JSON), on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"authsvc": {"()": "authsvc.logs.formatter_from_env"}},
        "handlers": {
            "authsvc": {"class": "logging.StreamHandler", "formatter": "authsvc", "stream": "ext://sys.stderr"}
        },
        "loggers": {"_granian": {"handlers": ["authsvc"], "level": "INFO", "propagate": False}},
    }


if __name__ == "__main__":
    main()

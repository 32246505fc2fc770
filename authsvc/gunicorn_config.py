"""gunicorn settings for ``python -m authsvc serve`` (also ``gunicorn -c gunicorn.conf.py``).

Workers default to the number of cores, which measured best here: token
signing is CPU-bound, and each worker keeps its own key objects and pool.
"""

import os
import shutil
import signal
import sys
import time

from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

from authsvc.logs import escape_log_text

bind = os.environ.get("AUTHSVC_BIND") or "127.0.0.1:8000"
workers = int(os.environ.get("AUTHSVC_WORKERS") or os.cpu_count() or 2)
worker_class = "authsvc.gunicorn_config.FairThreadWorker"
threads = 4
# Store statements time out after 5 s, well inside this, so a slow database
# ends a request with a 503 rather than a killed worker.
timeout = 30
graceful_timeout = 20
keepalive = 5
# The app from the installed package: a wheel install has no wsgi.py beside it.
wsgi_app = "authsvc.app:create_app()"
# The path only (%(U)s), never the query: /logout?id_token_hint=… must not reach a log.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms %({x-request-id}o)s'
# Every field of an access-log line is escaped; AUTHSVC_LOG_FORMAT=json makes every line JSON (see EscapingLogger).
logger_class = "authsvc.gunicorn_config.EscapingLogger"
errorlog = "-"
# gunicorn's control socket defaults to one path per user, which several
# instances on one host would fight over; authsvc is managed by its own CLI.
control_socket_disable = True


class FairThreadWorker(ThreadWorker):
    """gunicorn's gthread worker that leaves new connections to a less busy sibling.

    The workers of one server accept from one shared socket, and whichever
    wakes first takes the connection. A client that opens its keep-alive pool
    at once (a gateway, a load generator) was often served by one worker
    only: measured here, a third of 32-connection bursts all landed on one of
    two workers, which then ran on one core at half the throughput. As nginx
    does with ``accept_disabled``, a worker already holding at least as many
    connections as it has threads stops accepting for a moment after each
    accept, longer the more it holds, so an idle sibling takes the next ones.
    Below that many connections nothing changes, and while no sibling takes a
    connection it waits in the backlog for at most the pause.
    """

    # Seconds of pause per connection held, once it holds as many as it has threads: 16 connections pause 16 ms.
    PAUSE_PER_CONNECTION = 0.001

    def __init__(self, *args, **kwargs):
        self._accept_paused_until = 0.0
        super().__init__(*args, **kwargs)

    @property
    def worker_connections(self):
        # gthread's loop disables accepting while nr_conns >= worker_connections.
        if self._accept_paused_until and time.monotonic() < self._accept_paused_until:
            return 0
        return self._connection_limit

    @worker_connections.setter
    def worker_connections(self, value):
        self._connection_limit = value

    def accept(self, listener):
        super().accept(listener)
        if self.nr_conns >= self.cfg.threads:
            self._accept_paused_until = time.monotonic() + self.PAUSE_PER_CONNECTION * self.nr_conns

    def wait_for_and_dispatch_events(self, timeout):
        # Wake when the pause ends, not after the loop's usual second, so no connection waits longer.
        remaining = self._accept_paused_until - time.monotonic()
        if remaining > 0:
            timeout = min(timeout, remaining)
        super().wait_for_and_dispatch_events(timeout)


class EscapedAtoms(dict):
    """gunicorn's access-log atoms, each escaped when it is read; "-" for a missing one, as gunicorn does."""

    def __getitem__(self, name):
        if name.startswith("{"):
            name = name.lower()
        value = dict.get(self, name, "-")
        return escape_log_text(value) if isinstance(value, str) else value

    def values(self):
        return [self[name] for name in self]

    def items(self):
        return [(name, self[name]) for name in self]


class EscapingLogger(Logger):
    """gunicorn's logger: every access-log field escaped; with AUTHSVC_LOG_FORMAT=json, every line a JSON object.

    ``%(U)s`` is the percent-decoded path, so ``/%0D%0APOST%20/token…`` would
    otherwise end the line and write a forged one after it; a header (``%(a)s``,
    ``%({name}i)s``) could carry an ESC sequence for the terminal reading the log.
    In JSON the encoder escapes, and the access line carries named fields instead.

    ``setup`` also installs the app's own log handler (``authsvc.logs``), so
    gunicorn's lines, the app's and the security events share one format.
    """

    def setup(self, cfg):
        from authsvc import logs

        super().setup(cfg)
        self.log_format = logs.log_format_from_env()
        logs.configure(self.log_format)
        for handler in self.error_log.handlers + self.access_log.handlers:
            if getattr(handler, "_gunicorn", False):
                handler.addFilter(logs.RequestIdFilter())
                if self.log_format == "json":
                    handler.setFormatter(logs.json_formatter())

    def atoms(self, resp, req, environ, request_time):
        # Escaped as the format reads them: gunicorn builds dozens of atoms (every header) per
        # request, and the format uses a handful.
        return EscapedAtoms(super().atoms(resp, req, environ, request_time))

    atoms_wrapper_class = staticmethod(lambda atoms: atoms)

    def access(self, resp, req, environ, request_time):
        if getattr(self, "log_format", "text") != "json":
            return super().access(resp, req, environ, request_time)
        if not self.access_log_enabled:
            return
        fields = access_fields(resp, environ, request_time)
        try:
            self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields)
        except Exception:
            self.exception("cannot write an access-log line")


def access_fields(resp, environ, request_time) -> dict:
    """The access log's fields, by name. The path only: never the query (it can carry tokens)."""
    status = getattr(resp, "status_code", None)
    if status is None:
        status = str(getattr(resp, "status", "")).split(" ", 1)[0]
    return {
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
        "status": int(status) if str(status).isdigit() else None,
        "bytes": getattr(resp, "sent", None),
        "duration_ms": round(request_time.seconds * 1000 + request_time.microseconds / 1000, 1),
        "request_id": environ.get("authsvc.request_id"),
        "remote_addr": environ.get("REMOTE_ADDR"),
    }


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
    from authsvc.metrics_dir import prepare_metrics_dir

    try:
        server._authsvc_metrics_dir = prepare_metrics_dir()
    except OSError as exc:
        print(f"authsvc: PROMETHEUS_MULTIPROC_DIR: {exc}", file=sys.stderr)
        sys.exit(1)
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


def post_worker_init(worker):
    """On SIGTERM, before gunicorn's own handling: fail /readyz and refuse new connections at once.

    gunicorn then stops accepting and finishes the requests in flight (up to
    graceful_timeout); connections a balancer keeps open may still bring a
    request, and its /readyz must say "draining". The arbiter closed its copy
    of the listening sockets already; this worker's copy is closed too, so a
    new connection is refused (the balancer tries another instance) instead
    of waiting in the backlog until this worker exits.
    """
    from authsvc.web import ops

    stop = worker.handle_exit

    def handle_exit(sig, frame):
        ops.draining.set()
        stop(sig, frame)
        queue = getattr(worker, "method_queue", None)
        if queue is not None:
            # gthread: on its main loop, not inside whatever the signal interrupted.
            queue.defer(_close_listeners, worker)

    if hasattr(worker, "set_accept_enabled"):
        accept = worker.accept

        def accept_while_open(listener):
            # A readiness event of a listener closed since (gunicorn's close() drops .sock): nothing to accept.
            if listener.sock is not None:
                accept(listener)

        worker.accept = accept_while_open
    worker.handle_exit = handle_exit
    signal.signal(signal.SIGTERM, handle_exit)
    # The app is loaded: from here this worker accepts connections.
    worker.log.info("Worker ready (pid: %s)", worker.pid)


def _close_listeners(worker) -> None:
    worker.set_accept_enabled(False)
    for listener in worker.sockets:
        listener.close()


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

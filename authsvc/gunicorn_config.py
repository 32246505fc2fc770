"""gunicorn settings for ``python -m authsvc serve`` (also ``gunicorn -c gunicorn.conf.py``).

Workers default to the number of cores, which measured best here: token
signing is CPU-bound, and each worker keeps its own key objects and pool.
"""

import os
import shutil
import sys
import tempfile

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
errorlog = "-"
# gunicorn's control socket defaults to one path per user, which several
# instances on one host would fight over; authsvc is managed by its own CLI.
control_socket_disable = True


def on_starting(server):
    """Check settings and the key ring once, before any worker starts."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if here not in sys.path:
        sys.path.insert(0, here)
    from authsvc.config import Settings
    from authsvc.errors import AuthsvcError
    from authsvc.services import open_keyring

    try:
        open_keyring(Settings.from_env())
    except AuthsvcError as exc:
        print(f"authsvc: {exc}", file=sys.stderr)
        sys.exit(1)
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = tempfile.mkdtemp(prefix="authsvc-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        server.cfg.env_orig = getattr(server.cfg, "env_orig", {})
        server._authsvc_metrics_dir = path


def on_exit(server):
    path = getattr(server, "_authsvc_metrics_dir", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)

"""Operations endpoints: liveness, readiness and Prometheus metrics.

``/metrics`` is never open to whoever reaches the port. With
``AUTHSVC_METRICS_BIND`` it is served on that address only (by the gunicorn
arbiter, see ``metrics_listener``) and is a 404 here; otherwise, with
``AUTHSVC_METRICS_TOKEN``, it is served here to ``Authorization: Bearer
<token>`` only; with neither, it is off (404).
"""

import logging
import threading
import time

from flask import Blueprint
from flask import Response
from flask import abort
from flask import jsonify
from flask import request

from ..errors import AuthsvcError
from ..events import security_event
from . import services
from .errors import error_response
from .metrics import render_metrics
from .metrics_listener import bearer_token_matches

bp = Blueprint("ops", __name__)
log = logging.getLogger(__name__)

# Set when this process starts to stop (gunicorn_config.post_worker_init, on SIGTERM):
# from then on /readyz fails, on connections a balancer still holds open too.
draining = threading.Event()
# A failing dependency is logged when its failure changes, else once a minute per process, not on every probe.
FAILURE_LOG_INTERVAL = 60.0
_last_logged: dict[str, tuple[str, float]] = {}


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready when the store answers and the key ring can sign."""
    if draining.is_set():
        return jsonify(status="draining"), 503
    svc = services()
    failed = []
    try:
        svc.store.ping()
    except AuthsvcError as exc:
        _failed(failed, "store", exc)
    try:
        svc.keyring.reload_if_changed()
        svc.keyring.active(svc.settings.signing_alg)
        if svc.keyring.last_error:
            _failed(failed, "key ring", svc.keyring.last_error)
    except AuthsvcError as exc:
        _failed(failed, "key ring", exc)
    if failed:
        # Names only: a driver's message can carry hosts, ports and user names.
        return jsonify(status="unavailable", failed=failed), 503, {"Retry-After": "5"}
    return jsonify(status="ready")


def _failed(failed: list, dependency: str, detail) -> None:
    failed.append(dependency)
    # The kind of failure, not its text: a driver words one outage several ways
    # ("connection refused", "server closed the connection"), and each probe must not log it anew.
    kind, now = type(detail).__name__ if isinstance(detail, BaseException) else str(detail), time.monotonic()
    last_kind, last_time = _last_logged.get(dependency, ("", -FAILURE_LOG_INTERVAL))
    if kind != last_kind or now - last_time >= FAILURE_LOG_INTERVAL:
        _last_logged[dependency] = (kind, now)
        log.warning("readyz: %s unavailable: %s", dependency, detail)


@bp.get("/metrics")
def metrics():
    settings = services().settings
    if settings.metrics_bind or not settings.metrics_token:
        abort(404)
    if not bearer_token_matches(request.headers.get("Authorization"), settings.metrics_token):
        security_event("metrics.unauthorized", logging.WARNING, address=request.remote_addr)
        return error_response(
            401, "invalid_token", "A bearer token is required.", {"WWW-Authenticate": 'Bearer realm="metrics"'}
        )
    body, content_type = render_metrics()
    return Response(body, content_type=content_type)

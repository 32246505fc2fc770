"""Operations endpoints: liveness, readiness and Prometheus metrics.

``/metrics`` is never open to whoever reaches the port. With
``AUTHSVC_METRICS_BIND`` it is served on that address only (by the gunicorn
arbiter, see ``metrics_listener``) and is a 404 here; otherwise, with
``AUTHSVC_METRICS_TOKEN``, it is served here to ``Authorization: Bearer
<token>`` only; with neither, it is off (404).
"""

import logging

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


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready when the store answers and the key ring can sign."""
    svc = services()
    problems = []
    try:
        svc.store.ping()
    except AuthsvcError as exc:
        problems.append(f"store: {exc}")
    try:
        svc.keyring.reload_if_changed()
        svc.keyring.active(svc.settings.signing_alg)
        if svc.keyring.last_error:
            problems.append(f"key ring: {svc.keyring.last_error}")
    except AuthsvcError as exc:
        problems.append(f"key ring: {exc}")
    if problems:
        return jsonify(status="unavailable", problems=problems), 503, {"Retry-After": "5"}
    return jsonify(status="ready")


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

"""Operations endpoints: liveness, readiness and Prometheus metrics."""

from flask import Blueprint
from flask import Response
from flask import jsonify

from ..errors import AuthsvcError
from . import services
from .metrics import render_metrics

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
    body, content_type = render_metrics()
    return Response(body, content_type=content_type)

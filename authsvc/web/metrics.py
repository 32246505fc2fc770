"""Prometheus metrics. Under gunicorn each worker writes to a shared
multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``, set by
``gunicorn_config.on_starting``) so ``/metrics`` reports the whole server, not
one worker. Where ``/metrics`` is served, and to whom, is decided in ``ops``.

Labels are endpoint names and status codes only: never tokens, client
secrets, usernames or anything else a request carries.
"""

import os
import time

from flask import g
from flask import request
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client import multiprocess

REQUESTS = Counter("authsvc_http_requests_total", "HTTP requests by endpoint and status.", ["endpoint", "status"])
LATENCY = Histogram(
    "authsvc_http_request_seconds",
    "Time to answer, by endpoint.",
    ["endpoint"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


def init_app(app) -> None:
    app.before_request(_start)
    app.after_request(_observe)


def _start():
    g.metrics_start = time.perf_counter()


def _observe(response):
    rule = request.url_rule
    endpoint = rule.rule if rule is not None else "unmatched"
    counter, latency = children_for(endpoint, response.status_code)
    counter.inc()
    started = g.get("metrics_start")
    if started is not None:
        latency.observe(time.perf_counter() - started)
    return response


# (endpoint, status) -> the labelled counter and histogram: ``labels()`` takes a lock and
# builds its key on every call. Endpoints are URL rules and statuses few, so this stays small.
_CHILDREN: dict = {}


def children_for(endpoint: str, status: int):
    children = _CHILDREN.get((endpoint, status))
    if children is None:
        children = _CHILDREN[(endpoint, status)] = (REQUESTS.labels(endpoint, str(status)), LATENCY.labels(endpoint))
    return children


def render_metrics():
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

"""Who may read /metrics, in process: off by default, a bearer token on the main bind, or a bind of its own.

The listener the gunicorn arbiter runs for AUTHSVC_METRICS_BIND is driven
here as the WSGI app it is; tests/e2e/test_metrics_bind.py runs it in gunicorn.
"""

import pytest
from werkzeug.test import Client

from authsvc.app import create_app
from authsvc.services import build
from authsvc.web.metrics_listener import bearer_token_matches
from authsvc.web.metrics_listener import metrics_app

TOKEN = "s3cret-metrics-token-0123456789"


@pytest.fixture
def app_with(settings, clock, keyring, store):
    """An app whose settings carry ``overrides``."""
    built = []

    def make(**overrides):
        services = build(settings.with_overrides(**overrides), clock=clock, keyring=keyring)
        built.append(services)
        return create_app(services=services).test_client()

    yield make
    for services in built:
        services.close()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_metrics_are_off_without_a_bind_or_a_token(app_with):
    client = app_with()
    for headers in ({}, bearer(TOKEN), bearer("")):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert "authsvc_http" not in response.get_data(as_text=True)


def test_with_a_token_metrics_answer_only_to_it(app_with, caplog):
    client = app_with(metrics_token=TOKEN)
    refused = [
        {},
        bearer(""),
        bearer("wrong"),
        bearer(TOKEN[:-1]),
        bearer(TOKEN + "x"),
        {"Authorization": "Basic " + TOKEN},
        {"Authorization": TOKEN},
    ]
    for headers in refused:
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert response.json["error"] == "invalid_token"
        assert TOKEN not in response.get_data(as_text=True)
    events = [r for r in caplog.records if getattr(r, "event", None) == "metrics.unauthorized"]
    assert len(events) == len(refused) and all(TOKEN not in r.getMessage() for r in events)
    allowed = client.get("/metrics", headers=bearer(TOKEN))
    assert allowed.status_code == 200 and "authsvc_http_requests_total" in allowed.get_data(as_text=True)
    # The scheme is case-insensitive (RFC 7235 §2.1).
    assert client.get("/metrics", headers={"Authorization": "bearer " + TOKEN}).status_code == 200


def test_with_a_bind_of_its_own_the_main_app_does_not_serve_metrics(app_with):
    client = app_with(metrics_bind="127.0.0.1:9100", metrics_token=TOKEN)
    assert client.get("/metrics", headers=bearer(TOKEN)).status_code == 404
    assert client.get("/metrics").status_code == 404


def test_the_token_comparison_runs_in_constant_time(monkeypatch):
    compared = []
    import authsvc.web.metrics_listener as listener

    real = listener.hmac.compare_digest
    monkeypatch.setattr(listener.hmac, "compare_digest", lambda a, b: compared.append((a, b)) or real(a, b))
    assert bearer_token_matches("Bearer " + TOKEN, TOKEN)
    assert not bearer_token_matches("Bearer x", TOKEN)
    assert not bearer_token_matches(None, TOKEN)
    # Two comparisons, each of equal-length digests: neither the content nor the length shows in the time.
    assert len(compared) == 2 and all(len(a) == len(b) == 32 for a, b in compared)


@pytest.fixture
def multiproc_dir(tmp_path, monkeypatch):
    path = tmp_path / "metrics"
    path.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))
    return path


def test_the_listener_serves_only_metrics(multiproc_dir):
    client = Client(metrics_app(None))
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    for path in ("/", "/token", "/healthz", "/metrics/", "/favicon.ico"):
        assert client.get(path).status_code == 404, path
    assert client.post("/metrics").status_code == 404


def test_the_listener_with_a_token_answers_only_to_it(multiproc_dir):
    client = Client(metrics_app(TOKEN))
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer("wrong")).status_code == 401
    assert client.get("/metrics", headers=bearer(TOKEN)).status_code == 200

"""/readyz names the dependency that failed, never the driver's text; a stopping process says "draining"."""

import logging

import pytest

from authsvc.app import create_app
from authsvc.services import build
from authsvc.web import ops

# Nothing listens on port 1; the driver's message names this host and port.
DEAD_DATABASE_URL = "postgresql+psycopg://authsvc@192.0.2.1:1/secretdb?connect_timeout=1"


@pytest.fixture
def dead_store_client(settings, clock, keyring, monkeypatch):
    monkeypatch.setattr(ops, "_last_logged", {})  # whatever earlier tests logged
    services = build(settings.with_overrides(database_url=DEAD_DATABASE_URL), clock=clock, keyring=keyring)
    yield create_app(services=services).test_client()
    services.close()


def test_an_unreachable_database_is_named_store_and_nothing_more(dead_store_client, caplog):
    caplog.set_level(logging.WARNING, logger="authsvc")
    response = dead_store_client.get("/readyz")

    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.json == {"status": "unavailable", "failed": ["store"]}
    body = response.get_data(as_text=True)
    assert "192.0.2.1" not in body and "secretdb" not in body and "authsvc@" not in body
    # The operator's log has what happened.
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("readyz: store unavailable")]
    assert "192.0.2.1" in line


def test_the_same_failure_is_logged_once_a_minute_not_on_every_probe(dead_store_client, caplog):
    caplog.set_level(logging.WARNING, logger="authsvc")
    for _ in range(3):
        assert dead_store_client.get("/readyz").status_code == 503
    assert len([r for r in caplog.records if r.getMessage().startswith("readyz: store")]) == 1


def test_a_draining_process_is_not_ready(client):
    assert client.get("/readyz").status_code == 200
    ops.draining.set()
    try:
        response = client.get("/readyz")
    finally:
        ops.draining.clear()
    assert (response.status_code, response.json) == (503, {"status": "draining"})
    assert client.get("/healthz").status_code == 200

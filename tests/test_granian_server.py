"""What ``serve --server granian`` loads in each worker, in process."""

import logging
import os

from werkzeug.test import Client

from authsvc import granian_server
from authsvc.web.access_log import AccessLog


def test_the_worker_app_leaves_no_setting_in_the_environment(settings, keyring, store, monkeypatch, caplog):
    """granian copies os.environ into every request's environ: the settings must be gone from it first."""
    monkeypatch.setenv("AUTHSVC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("AUTHSVC_KEYS_DIR", settings.keys_dir)
    monkeypatch.setenv("AUTHSVC_METRICS_TOKEN", "m" * 32)
    monkeypatch.setenv("AUTHSVC_ISSUER", "http://127.0.0.1:8000")
    root_handlers = list(logging.getLogger().handlers)
    try:
        app = granian_server.create_worker_app()
    finally:
        for handler in logging.getLogger().handlers:
            if handler not in root_handlers:
                logging.getLogger().removeHandler(handler)
    assert isinstance(app, AccessLog)
    assert not [name for name in os.environ if name.startswith("AUTHSVC_")]
    with caplog.at_level(logging.INFO, logger="authsvc.access"):
        response = Client(app).get("/healthz", buffered=True)
    assert response.status_code == 200
    [line] = [r.getMessage() for r in caplog.records if r.name == "authsvc.access"]
    assert line.startswith('- "GET /healthz" 200 ') and line.endswith(response.headers["X-Request-Id"])

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


def _list_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"a": ', b"1}"]


def _streaming_app(environ, start_response):
    start_response("404 NOT FOUND", [("Content-Type", "text/plain")])
    yield b"no"
    yield b"pe"


def test_the_access_log_writes_one_line_per_response_complete_or_streamed(caplog):
    with caplog.at_level(logging.INFO, logger="authsvc.access"):
        Client(AccessLog(_list_app, json_fields=True)).post("/token?code=secret", buffered=True)
        Client(AccessLog(_streaming_app, json_fields=True)).get("/missing", buffered=True)
    first, second = [r for r in caplog.records if r.name == "authsvc.access"]
    assert (first.method, first.path, first.status, first.bytes) == ("POST", "/token", 200, 8)
    assert (second.method, second.status, second.bytes) == ("GET", 404, 4)
    # The query, which can carry a code or a token, is never logged.
    assert "secret" not in first.getMessage() and not hasattr(first, "query")


def test_text_access_lines_escape_every_field(caplog):
    with caplog.at_level(logging.INFO, logger="authsvc.access"):
        Client(AccessLog(_streaming_app, json_fields=False)).get('/x%0D%0A127.0.0.1 "GET /"', buffered=True)
    [line] = [r.getMessage() for r in caplog.records if r.name == "authsvc.access"]
    assert "\r" not in line and "\n" not in line
    assert '"GET /x\\x0d\\x0a127.0.0.1 \\x22GET /\\x22" 404 4 ' in line

"""X-Request-Id: believed from a trusted proxy only, generated otherwise, on every response and every log line."""

import io
import json
import logging
import re
from dataclasses import replace

import pytest

from authsvc import logs
from authsvc.app import create_app

GENERATED = re.compile(r"[0-9a-f]{32}")
PROXY = {"REMOTE_ADDR": "10.0.0.5"}


@pytest.fixture
def proxied(services):
    """The app behind a balancer at 10.0.0.0/8 (the same services as ``client``'s app, which trusts no proxy)."""
    settings = services.settings.with_overrides(trusted_proxies=("10.0.0.0/8",))
    return create_app(services=replace(services, settings=settings)).test_client()


def test_an_id_is_generated_for_each_request(client):
    first, second = client.get("/healthz"), client.get("/healthz")
    assert GENERATED.fullmatch(first.headers["X-Request-Id"])
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


def test_a_trusted_proxy_s_id_is_kept(proxied):
    response = proxied.get("/healthz", headers={"X-Request-Id": "lb-7f3a.9_Z"}, environ_base=PROXY)
    assert response.headers["X-Request-Id"] == "lb-7f3a.9_Z"


def test_anyone_else_s_id_is_replaced(client, proxied):
    for app, environ in ((client, PROXY), (proxied, {"REMOTE_ADDR": "192.0.2.7"})):
        response = app.get("/healthz", headers={"X-Request-Id": "chosen-by-the-client"}, environ_base=environ)
        assert GENERATED.fullmatch(response.headers["X-Request-Id"])


@pytest.mark.parametrize("given", ["x" * 129, "two words", "a;b", "é", "a/b", ""])
def test_an_id_that_is_not_short_and_plain_is_replaced_even_from_a_proxy(proxied, given):
    response = proxied.get("/healthz", headers={"X-Request-Id": given}, environ_base=PROXY)
    assert GENERATED.fullmatch(response.headers["X-Request-Id"])


def test_error_responses_carry_it_too(client):
    for response in (client.get("/no-such-page"), client.post("/token", data="x" * 70_000)):
        assert response.status_code >= 400
        assert GENERATED.fullmatch(response.headers["X-Request-Id"])
        assert response.headers.getlist("X-Request-Id") == [response.headers["X-Request-Id"]]


def test_every_log_line_of_a_request_carries_its_id(proxied):
    stream = io.StringIO()
    handler = logs.configure("json", stream)
    try:
        page = proxied.get("/login", environ_base=PROXY)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        response = proxied.post(
            "/login",
            data={"username": "nobody", "password": "not this one", "csrf_token": csrf},
            headers={"X-Request-Id": "lb-42"},
            environ_base=PROXY,
        )
    finally:
        logging.getLogger().removeHandler(handler)
    assert response.status_code == 401 and response.headers["X-Request-Id"] == "lb-42"
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines if line.get("request_id") == "lb-42"] == ["login.failed"]
    assert all("request_id" in line for line in lines)

"""AUTHSVC_LOG_FORMAT=json through a real gunicorn: every line of its output is one JSON object, and the
app's lines, the security events and the access line of a request share its request id.
"""

import json
import re

import pytest
import requests

from tests.servers import Instance
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import server_env

PASSWORD = "a wrong password, never logged"


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e-json-logs")
    port = free_port()
    # The test client connects from 127.0.0.1: here it is the trusted balancer.
    env = server_env(
        tmp_path, issuer=f"http://127.0.0.1:{port}", AUTHSVC_LOG_FORMAT="json", AUTHSVC_TRUSTED_PROXIES="127.0.0.1/32"
    )
    prepare(env)
    server = Instance(env, port)
    yield server
    server.stop()


def records(instance) -> list[dict]:
    lines = [line for line in instance.read_log().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return parsed


def wait_for_access(instance, request_id: str) -> list[dict]:
    """gunicorn writes the access line after the response: wait for it, not for a fixed time."""
    for _ in range(100):
        found = [r for r in records(instance) if r.get("request_id") == request_id]
        if any(r["logger"] == "gunicorn.access" for r in found):
            return found
        requests.get(instance.url + "/healthz", timeout=5)
    raise AssertionError(f"no access line for {request_id}")


def test_every_line_is_json_and_a_request_is_traced_by_its_balancer_id(instance):
    session = requests.Session()
    page = session.get(instance.url + "/login", timeout=10)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    response = session.post(
        instance.url + "/login?next=%0d%0a",
        data={"username": "nobody", "password": PASSWORD, "csrf_token": csrf},
        headers={"X-Request-Id": "lb-7f3a.login_1"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.headers["X-Request-Id"] == "lb-7f3a.login_1"

    traced = wait_for_access(instance, "lb-7f3a.login_1")
    [event] = [r for r in traced if r.get("event") == "login.failed"]
    assert event["logger"] == "authsvc.security" and event["level"] == "INFO"
    assert event["address"] == "127.0.0.1" and event["username_hash"] and "time" in event
    [access] = [r for r in traced if r["logger"] == "gunicorn.access"]
    assert access["method"] == "POST" and access["path"] == "/login" and access["status"] == 401
    assert access["remote_addr"] == "127.0.0.1" and access["bytes"] > 0 and access["duration_ms"] >= 0
    everything = instance.read_log()
    assert PASSWORD not in everything and "next=" not in everything
    # gunicorn's own lines too.
    assert any(r["logger"] == "gunicorn.error" and "Booting worker" in r["message"] for r in records(instance))


def test_an_id_that_is_not_plain_text_is_replaced(instance):
    response = requests.get(instance.url + "/healthz", headers={"X-Request-Id": "x" * 129}, timeout=10)
    request_id = response.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    [access] = [r for r in wait_for_access(instance, request_id) if r["logger"] == "gunicorn.access"]
    assert access["path"] == "/healthz" and access["status"] == 200

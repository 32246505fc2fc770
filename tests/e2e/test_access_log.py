"""The access log through a real gunicorn: one line per request, whatever the request carries.

``%(U)s`` is the percent-decoded path, so ``%0D%0A`` in a URL used to end the
line and write a second, forged one (``"POST /token" 200``) after it.
"""

import re
import socket
from types import SimpleNamespace

import pytest
import requests

from authsvc.gunicorn_config import EscapingLogger
from authsvc.gunicorn_config import escape_log_text
from tests.servers import Instance
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import server_env

FORGED = "/x%0D%0A127.0.0.1%20%22POST%20/token%22%20200%2042%201ms%0A%1B[2J%22%5C%C3%A9"


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("e2e-access-log")
    port = free_port()
    env = server_env(tmp_path, issuer=f"http://127.0.0.1:{port}")
    prepare(env)
    server = Instance(env, port)
    yield server
    server.stop()


def access_lines(instance) -> list[str]:
    return [line for line in instance.read_log().splitlines() if line.startswith("127.0.0.1 ")]


def wait_for_line(instance, marker: str) -> list[str]:
    """gunicorn writes the access line after the response: wait for it rather than for a fixed time."""
    for _ in range(100):
        lines = [line for line in access_lines(instance) if marker in line]
        if lines:
            return lines
        requests.get(instance.url + "/healthz", timeout=5)  # a later request: its line follows ours
    raise AssertionError(f"no access-log line with {marker!r}")


def test_a_crlf_in_the_path_cannot_forge_a_log_line(instance):
    before = access_lines(instance)
    # Sent raw: an HTTP library would normalise the path.
    with socket.create_connection(("127.0.0.1", instance.port), timeout=10) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % FORGED.encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 404")
    [line] = wait_for_line(instance, '"GET /x')
    assert line.startswith('127.0.0.1 "GET /x\\x0d\\x0a127.0.0.1 \\x22POST /token\\x22 200 42 1ms\\x0a\\x1b[2J')
    assert re.search(r" \d+ms [0-9a-f]{32}$", line) and '\\x22\\x5c\\xc3\\xa9" 404 ' in line
    # No line but the real ones was added: none starts with the forged text.
    new = access_lines(instance)[len(before) :]
    assert not [entry for entry in new if '"POST /token"' in entry]
    assert "\x1b" not in instance.read_log()


def test_the_query_never_reaches_the_log(instance):
    hint = "eyJhbGciOiJSUzI1NiJ9.secret-looking-hint.sig"
    requests.get(instance.url + "/logout", params={"id_token_hint": hint}, timeout=5)
    wait_for_line(instance, '"GET /logout"')
    assert hint not in instance.read_log() and "id_token_hint" not in instance.read_log()


def test_every_atom_is_escaped_headers_included():
    """Whatever fields an operator adds to the format (%(a)s, %({name}i)s, %(f)s) are escaped too."""
    logger = EscapingLogger.__new__(EscapingLogger)
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/a%0d%0ab",
        "PATH_INFO": "/a\r\nb",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": "curl\x1b[31m\x7f\u2028",
        "HTTP_REFERER": "https://x.example/\x00",
    }
    request = SimpleNamespace(headers=[("USER-AGENT", environ["HTTP_USER_AGENT"])])
    response = SimpleNamespace(status="200 OK", sent=2, headers=[("X-Echo", "a\nb")])
    atoms = logger.atoms(response, request, environ, SimpleNamespace(seconds=0, microseconds=1500))
    assert atoms["U"] == "/a\\x0d\\x0ab"
    assert atoms["a"] == atoms["{user-agent}i"] == "curl\\x1b[31m\\x7f\\u2028"
    assert atoms["f"] == "https://x.example/\\x00"
    assert atoms["{x-echo}o"] == "a\\x0ab"
    assert atoms["s"] == "200" and atoms["M"] == 1
    assert all("\n" not in value and "\r" not in value for value in atoms.values() if isinstance(value, str))


@pytest.mark.parametrize(
    ("text", "logged"),
    [
        ("/token", "/token"),
        ("/a b~", "/a b~"),
        ('"\\', "\\x22\\x5c"),
        ("\t\r\n\x00\x7f", "\\x09\\x0d\\x0a\\x00\\x7f"),
        ("é", "\\xe9"),
        ("\u2028\U0001f600", "\\u2028\\U0001f600"),
    ],
)
def test_escape_log_text(text, logged):
    assert escape_log_text(text) == logged

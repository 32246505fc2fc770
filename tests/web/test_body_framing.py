"""A body the server cannot deliver is a 400, in process and whatever the WSGI server.

tests/e2e/test_framing.py sends the malformed bytes through gunicorn; here the
``wsgi.input`` stands for a server's reader that raises, or ends early.
"""

import io
from urllib.parse import urlencode

import pytest

from tests.conftest import basic_auth

FORM = "application/x-www-form-urlencoded"


class ServerParseError(Exception):
    """Like gunicorn's ChunkMissingTerminator: neither OSError nor ValueError."""


class FailingInput:
    def __init__(self, data: bytes = b"grant_type="):
        self.data = data

    def read(self, size=-1):
        if self.data:
            data, self.data = self.data, b""
            return data
        raise ServerParseError("Invalid chunk terminator is not '\\r\\n': b'X0'")

    readline = read


def chunked_post(client, path, stream):
    return client.post(
        path,
        content_type=FORM,
        environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True},
        headers={"Transfer-Encoding": "chunked"},
    )


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect", "/userinfo", "/par"])
def test_a_read_error_at_an_oauth_endpoint_is_invalid_request(client, path):
    response = chunked_post(client, path, FailingInput())
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert response.json["error_description"] == "The request body is malformed."


@pytest.mark.parametrize("path", ["/login", "/authorize", "/logout"])
def test_a_read_error_on_a_page_is_the_html_error_page(client, path):
    response = chunked_post(client, path, FailingInput())
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "ServerParseError" not in response.get_data(as_text=True)


def test_a_body_shorter_than_its_content_length_is_refused(client):
    body = b"grant_type=client_credentials"
    response = client.post(
        "/token",
        content_type=FORM,
        environ_overrides={"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": "100", "wsgi.input_terminated": True},
    )
    assert response.status_code == 400
    assert response.json["error_description"] == "The request body is malformed."


def test_a_complete_body_is_read_as_before(client, make_client):
    record, secret = make_client("svc", grant_types=("client_credentials",), redirect_uris=(), scope="api:read")
    body = urlencode({"grant_type": "client_credentials", "scope": "api:read"}).encode()
    response = client.post(
        "/token",
        content_type=FORM,
        headers=basic_auth(record.client_id, secret),
        environ_overrides={
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input_terminated": True,
        },
    )
    assert response.status_code == 200, response.json

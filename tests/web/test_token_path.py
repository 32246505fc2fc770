"""The client-credentials shortcut in front of Flask (``web/token_path.py``) against the full path.

The shortcut may only ever answer what the full Authlib path would have
answered: the same status, the same headers, the same token claims (a fresh
``jti`` aside), and for every request it does not take, the full path's own
answer. These tests send the same request to both and compare, over the
request shapes Hypothesis draws, and check that plain requests really do skip
the framework.
"""

import base64
import io
import json
from dataclasses import replace

import jwt
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from werkzeug.test import Client

from authsvc.app import create_app
from authsvc.web import metrics
from authsvc.web.token_path import ClientCredentialsPath
from tests.conftest import basic_auth
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401

FORM = "application/x-www-form-urlencoded"
API_A, API_B = "https://api-a.example", "https://api-b.example"


@pytest.fixture(params=[False, True], ids=["no-dpop-nonce", "dpop-nonce"])
def settings(request, settings):
    return settings.with_overrides(dpop_nonce_required=request.param)


@pytest.fixture
def registered(make_client, services):
    """Clients of every kind the shortcut must tell apart, by name: (record, secret)."""
    cc = dict(grant_types=("client_credentials",), redirect_uris=())
    made = {
        "service": make_client("service", scope="api:read api:write", audiences=(API_A, API_B), **cc),
        "no-audience": make_client("no-audience", scope="api:read", **cc),
        "post": make_client("post", scope="api:read", auth_method="client_secret_post", **cc),
        "code-only": make_client("code-only", scope="api:read"),
        "public": make_client("public", public=True, scope="api:read"),
    }
    bound, secret = make_client("bound", scope="api:read", **cc)
    bound = services.store.update_client(bound.client_id, lambda record: replace(record, dpop_bound=True))
    made["bound"] = (bound, secret)
    return made


class Paths:
    """The shortcut and the full path of one app, and how many requests the shortcut passed on."""

    def __init__(self, app):
        layer = app.wsgi_app
        while not isinstance(layer, ClientCredentialsPath):
            layer = layer.app
        self.full_app = layer.full_app
        self.passed_on = 0

        def counted(environ, start_response):
            self.passed_on += 1
            return self.full_app(environ, start_response)

        layer.full_app = counted
        self.shortcut = Client(layer)
        self.full = Client(self.full_app)

    def both(self, **request):
        """(shortcut's response, full path's response, whether the shortcut answered itself)."""
        before = self.passed_on
        fast = self.shortcut.open("/token", method="POST", **request)
        answered = self.passed_on == before
        if isinstance(request.get("input_stream"), io.BytesIO):
            request["input_stream"].seek(0)
        return fast, self.full.open("/token", method="POST", **request), answered


@pytest.fixture
def paths(services):
    return Paths(create_app(services=services))


def assert_same(fast, full):
    assert fast.status_code == full.status_code, (fast.get_data(), full.get_data())
    assert _headers(fast) == _headers(full)
    fast_body, full_body = json.loads(fast.get_data()), json.loads(full.get_data())
    if full.status_code != 200:
        assert fast_body == full_body
        return
    assert list(fast_body) == list(full_body)
    assert {**fast_body, "access_token": None} == {**full_body, "access_token": None}
    fast_token, full_token = fast_body["access_token"], full_body["access_token"]
    assert jwt.get_unverified_header(fast_token) == jwt.get_unverified_header(full_token)
    fast_claims, full_claims = _claims(fast_token), _claims(full_token)
    assert fast_claims.pop("jti") != full_claims.pop("jti")
    assert fast_claims == full_claims


def _headers(response):
    return sorted((name, value) for name, value in response.headers.items() if name != "Content-Length")


def _claims(token):
    return jwt.decode(token, options={"verify_signature": False})


def test_plain_requests_skip_the_framework(paths, registered):
    service, secret = registered["service"]
    auth = basic_auth(service.client_id, secret)
    bodies = [
        "grant_type=client_credentials",
        "grant_type=client_credentials&scope=api%3Aread",
        "scope=api:write+api:read&grant_type=client_credentials&resource=" + API_B,
    ]
    for body in bodies:
        fast, full, answered = paths.both(data=body, content_type=FORM, headers=auth)
        assert answered, body
        assert fast.status_code == 200
        assert_same(fast, full)
    claims = _claims(fast.json["access_token"])
    assert (claims["aud"], claims["scope"], claims["sub"]) == (API_B, "api:write api:read", service.client_id)


def test_token_is_signed_by_the_ring_and_counted(paths, registered, services):
    service, secret = registered["no-audience"]
    counter, _ = metrics.children_for("/token", 200)
    before = counter._value.get()
    fast, _, answered = paths.both(
        data="grant_type=client_credentials", content_type=FORM, headers=basic_auth(service.client_id, secret)
    )
    assert answered
    claims = services.tokens.decode_access_token(fast.json["access_token"])
    assert claims is not None and claims["aud"] == services.settings.issuer
    assert counter._value.get() == before + 2  # the shortcut's and the full path's


@pytest.mark.parametrize(
    "name, body, extra_headers",
    [
        ("service", "grant_type=client_credentials&scope=admin", {}),
        ("service", "grant_type=client_credentials&resource=https://evil.example", {}),
        ("service", "grant_type=client_credentials&scope=api:read&scope=api:read", {}),
        ("service", "grant_type=client_credentials&client_id=someone", {}),
        ("service", "grant_type=client_credentials", {"Origin": "https://app.example"}),
        ("service", "grant_type=client_credentials", {"DPoP": "not-a-proof"}),
        ("post", "grant_type=client_credentials", {}),
        ("code-only", "grant_type=client_credentials", {}),
        ("bound", "grant_type=client_credentials", {}),
        ("public", "grant_type=client_credentials", {}),
    ],
)
def test_what_the_shortcut_leaves_gets_the_full_answer(paths, registered, name, body, extra_headers):
    record, secret = registered[name]
    headers = {**basic_auth(record.client_id, secret or "x"), **extra_headers}
    fast, full, answered = paths.both(data=body, content_type=FORM, headers=headers)
    assert not answered
    assert_same(fast, full)


def test_a_body_shorter_than_its_length_is_refused_as_before(paths, registered):
    service, secret = registered["service"]
    body = io.BytesIO(b"grant_type=client_credentials")
    headers = basic_auth(service.client_id, secret)
    fast, full, answered = paths.both(
        input_stream=body, content_type=FORM, headers=headers, environ_overrides={"CONTENT_LENGTH": "60"}
    )
    assert not answered
    assert fast.status_code == 400
    assert_same(fast, full)


PARAMS = st.dictionaries(
    st.sampled_from(["grant_type", "scope", "resource", "client_id", "client_secret", "foo"]),
    st.sampled_from(
        [
            "client_credentials",
            "CLIENT_CREDENTIALS",
            "authorization_code",
            "",
            "api:read",
            "api:read api:write",
            "api:write api:read api:write",
            "api:admin",
            " api:read",
            API_A,
            API_B,
            "https://evil.example",
            "a\x00b",
            "é",
            "x" * 5000,
        ]
    ),
)
ENCODINGS = st.sampled_from(["plain", "repeat-first", "latin-1", "query", "json-type", "charset", "no-type"])


@given(
    who=st.sampled_from(["service", "no-audience", "post", "code-only", "bound", "public", "unknown", "none"]),
    credential=st.sampled_from(["right", "wrong", "empty", "malformed", "bearer"]),
    params=PARAMS,
    encoding=ENCODINGS,
)
@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_request_gets_the_full_paths_answer(paths, registered, who, credential, params, encoding):
    headers = _authorization(registered, who, credential)
    body = "&".join(f"{name}={value}".replace(" ", "+") for name, value in params.items())
    content_type, query = FORM, ""
    if encoding == "repeat-first" and params:
        body += "&" + body.split("&")[0]
    elif encoding == "query":
        query = "scope=api:read"
    elif encoding == "json-type":
        content_type = "application/json"
    elif encoding == "charset":
        content_type = FORM + "; charset=UTF-8"
    elif encoding == "no-type":
        content_type = None
    raw = body.encode("latin-1" if encoding == "latin-1" else "utf-8", "replace")
    fast, full, _ = paths.both(data=raw, content_type=content_type, headers=headers, query_string=query)
    assert_same(fast, full)


def _authorization(registered, who, credential) -> dict:
    if who == "none":
        return {}
    if credential == "malformed":
        return {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}
    if credential == "bearer":
        return {"Authorization": "Bearer abc.def.ghi"}
    record, secret = registered.get(who, (None, None))
    client_id = record.client_id if record is not None else "c_unknown"
    given_secret = {"right": secret or "", "wrong": (secret or "") + "x", "empty": ""}[credential]
    return basic_auth(client_id, given_secret)

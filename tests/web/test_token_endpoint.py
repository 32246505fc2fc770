"""POST /token under hostile and careless input (SECURITY.md B.26, B.33, E.49–E.54).

Every answer is an OAuth error as JSON with its RFC 6749 §5.2 status,
``Cache-Control: no-store``, ``WWW-Authenticate`` on 401, and never a 5xx.
"""

import base64
import io

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import basic_auth
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401

CC = {"grant_type": "client_credentials"}
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def service(make_client):
    return make_client("billing", grant_types=("client_credentials",), redirect_uris=(), scope="api:read api:write")


@pytest.fixture
def other(make_client):
    return make_client("other", grant_types=("client_credentials",), redirect_uris=(), scope="api:read")


def assert_error(response, status, error=None):
    """A JSON OAuth error with its status, not cached; 401s carry a challenge."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])
    assert response.mimetype == "application/json"
    body = response.json
    assert isinstance(body["error"], str) and body["error"]
    if error is not None:
        assert body["error"] == error, body
    assert isinstance(body.get("error_description", ""), str)
    assert "no-store" in response.headers["Cache-Control"]
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert "access_token" not in body
    return body


def post_raw(client, body: bytes, headers=None, content_type=FORM, path="/token"):
    return client.post(path, data=body, content_type=content_type, headers=headers or {})


def raw_basic(raw: bytes) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


# --- client authentication (B.26) -------------------------------------------------


def test_bad_credentials_are_invalid_client(client, service, other):
    record, secret = service
    other_record, other_secret = other
    cases = [
        basic_auth(record.client_id, "wrong-" + secret),
        basic_auth(record.client_id, secret[:-1]),
        basic_auth(record.client_id, ""),
        basic_auth("c_unknown", secret),
        basic_auth(record.client_id, other_secret),
        basic_auth(record.client_id.upper(), secret),
        {},
    ]
    for headers in cases:
        assert_error(client.post("/token", data=CC, headers=headers), 401, "invalid_client")
    # client_id alone is no authentication for a confidential client.
    assert_error(client.post("/token", data={**CC, "client_id": record.client_id}), 401, "invalid_client")
    # client_secret_post with another client's secret.
    form = {**CC, "client_id": other_record.client_id, "client_secret": secret}
    assert_error(client.post("/token", data=form), 401, "invalid_client")


def test_two_authentication_methods_at_once_are_refused(client, service):
    """RFC 6749 §2.3 / §5.2: more than one mechanism is invalid_request."""
    record, secret = service
    body = assert_error(
        client.post("/token", data={**CC, "client_secret": secret}, headers=basic_auth(record.client_id, secret)),
        400,
        "invalid_request",
    )
    assert "access_token" not in body
    mismatched = {**CC, "client_id": "c_someone_else"}
    assert_error(
        client.post("/token", data=mismatched, headers=basic_auth(record.client_id, secret)), 400, "invalid_request"
    )


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"\xff\xfe\xfd:\xff").decode(),
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b":secret-without-id").decode(),
        "Basic " + base64.b64encode(b"a\x00b:c\x00d").decode(),
        "Basic " + base64.b64encode(b"%zz:%ff").decode(),
        "Basic " + base64.b64encode(b"%ed%a0%80:x").decode(),
        "Basic " + "A" * 10240,
        "Basic " + base64.b64encode(b"x" * 8000 + b":" + b"y" * 8000).decode(),
        "Basic",
        "Basic    ",
        "Basic =",
        "Basic \xe9\xe9",
        "Bearer abc.def.ghi",
        "Digest username=x",
        "basic",
        "\x01\x02",
    ],
    ids=lambda h: h[:24],
)
def test_garbage_authorization_headers(client, header):
    assert_error(client.post("/token", data=CC, headers={"Authorization": header}), 401, "invalid_client")


# --- parameters and bodies (E.49–E.52) -------------------------------------------


def test_missing_and_unknown_grant_types(client, service):
    record, secret = service
    auth = basic_auth(record.client_id, secret)
    assert_error(client.post("/token", data={"scope": "api:read"}, headers=auth), 400, "invalid_request")
    assert_error(post_raw(client, b"grant_type=", auth), 400, "invalid_request")
    for grant in ("password", "implicit", "urn:ietf:params:oauth:grant-type:jwt-bearer", "CLIENT_CREDENTIALS"):
        assert_error(client.post("/token", data={"grant_type": grant}, headers=auth), 400, "unsupported_grant_type")


@pytest.mark.parametrize(
    "body, query",
    [
        (b"grant_type=client_credentials&grant_type=client_credentials", ""),
        (b"grant_type=client_credentials&scope=api:read&scope=api:write", ""),
        (b"grant_type=client_credentials", "?grant_type=client_credentials"),
        (b"grant_type=client_credentials&scope=api:read", "?scope=api:read"),
        (b"grant_type=client_credentials&resource=https://a.example&resource=https://b.example", ""),
    ],
)
def test_repeated_parameters_are_invalid_request(client, service, body, query):
    record, secret = service
    response = post_raw(client, body, basic_auth(record.client_id, secret), path="/token" + query)
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("path", ["/token", "/revoke", "/introspect", "/par"])
def test_parameters_in_the_query_string_are_refused(client, service, path):
    record, secret = service
    response = post_raw(
        client, b"token=x", basic_auth(record.client_id, secret), path=path + "?grant_type=client_credentials"
    )
    assert_error(response, 400, "invalid_request")
    assert b"query string" in response.data


def test_repeated_client_credentials_in_the_body(client, make_client):
    record, secret = make_client(
        "poster", grant_types=("client_credentials",), redirect_uris=(), auth_method="client_secret_post"
    )
    body = f"grant_type=client_credentials&client_id={record.client_id}&client_secret={secret}&client_secret=x".encode()
    assert_error(post_raw(client, body), 400, "invalid_request")
    body = (
        f"grant_type=client_credentials&client_id={record.client_id}&client_id=c_other&client_secret={secret}".encode()
    )
    assert_error(post_raw(client, body), 400, "invalid_request")


def test_only_form_bodies_are_accepted(client, service):
    record, secret = service
    auth = basic_auth(record.client_id, secret)
    assert_error(client.post("/token", json=CC, headers=auth), 400, "invalid_request")
    multipart = client.post(
        "/token", data={**CC, "file": (io.BytesIO(b"x"), "x.txt")}, headers=auth, content_type="multipart/form-data"
    )
    assert_error(multipart, 400, "invalid_request")
    assert_error(client.post("/token", data=b"grant_type=client_credentials", headers=auth), 400, "invalid_request")
    for content_type in ("text/plain", "application/xml", "application/x-www-form-urlencodedX", "form"):
        assert_error(
            post_raw(client, b"grant_type=client_credentials", auth, content_type=content_type), 400, "invalid_request"
        )
    # 10k multipart parts are refused before anything parses them (Werkzeug CVE-2023-25577).
    parts = b"".join(b'--b\r\nContent-Disposition: form-data; name="p%d"\r\n\r\nx\r\n' % i for i in range(10_000))
    many = post_raw(client, parts + b"--b--\r\n", auth, content_type="multipart/form-data; boundary=b")
    assert 400 <= many.status_code < 500
    assert_error(many, many.status_code)
    # The same body with the right type works, with or without a charset parameter.
    assert post_raw(client, b"grant_type=client_credentials", auth).status_code == 200
    assert (
        post_raw(client, b"grant_type=client_credentials", auth, content_type=FORM + "; charset=UTF-8").status_code
        == 200
    )


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "TRACE"])
def test_token_endpoint_is_post_only(client, method):
    response = client.open("/token?grant_type=client_credentials", method=method)
    assert_error(response, 405)
    assert "POST" in response.headers["Allow"]


def test_head_and_options_do_not_fail(client):
    assert client.head("/token").status_code == 405
    assert client.options("/token").status_code < 500


def test_oversized_bodies_are_413(client, service):
    record, secret = service
    response = client.post(
        "/token", data={**CC, "scope": "api:read " * 12_000}, headers=basic_auth(record.client_id, secret)
    )
    assert_error(response, 413)
    assert_error(post_raw(client, b"grant_type=client_credentials&x=" + b"a" * 100_000), 413)


def test_long_parameters_are_refused_quickly(client, service):
    record, secret = service
    response = client.post("/token", data={**CC, "scope": "a" * 20_000}, headers=basic_auth(record.client_id, secret))
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&scope=api:read%00",
        b"grant_type=client_credentials%00",
        b"grant_type=client_credentials&resource=https://api.example/%00",
        b"grant_type=client_credentials&client_id=c_x%00&client_secret=y",
    ],
)
def test_nul_bytes_are_refused(client, service, body):
    record, secret = service
    response = post_raw(client, body, basic_auth(record.client_id, secret))
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=client_credentials&scope=%ff",
        b"grant_type=%ff%fe",
        b"grant_type=client_credentials&resource=%ff",
        b"grant_type=client_credentials&scope=%zz",
        b"grant_type=client_credentials&%ff=%ff",
        b"grant_type=client_credentials&scope=%ed%a0%80",
        b"\xff\xfe=\xff&grant_type=client_credentials",
        # An unknown parameter is ignored (RFC 6749 §3.2), whatever its name.
        b"grant_type=client_credentials&%00=1",
    ],
)
def test_bad_percent_encoding_is_a_clean_answer(client, service, body):
    record, secret = service
    response = post_raw(client, body, basic_auth(record.client_id, secret))
    assert response.status_code < 500
    if response.status_code != 200:
        assert_error(response, response.status_code)


def test_bad_percent_encoding_in_client_credentials(client):
    for body in (
        b"grant_type=client_credentials&client_id=%ff&client_secret=%ff",
        b"grant_type=client_credentials&client_id=%ed%a0%80&client_secret=x",
    ):
        assert_error(post_raw(client, body), 401, "invalid_client")


def test_forwarded_headers_change_nothing_in_the_token(client, service, settings):
    import jwt

    record, secret = service
    headers = {
        **basic_auth(record.client_id, secret),
        "Host": "evil.example",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "Forwarded": "host=evil.example;proto=https",
    }
    response = client.post("/token", data=CC, headers=headers, base_url="https://evil.example")
    claims = jwt.decode(response.json["access_token"], options={"verify_signature": False})
    assert claims["iss"] == claims["aud"] == settings.issuer


# --- property: nothing a client sends gives a 5xx -------------------------------

KEYS = st.sampled_from(
    [
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "resource",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "x",
    ]
)
VALUES = st.one_of(
    st.sampled_from(
        ["client_credentials", "authorization_code", "refresh_token", "", "api:read", "https://api.example"]
    ),
    st.text(max_size=40),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    form=st.lists(st.tuples(KEYS, VALUES), max_size=6),
    authorization=st.one_of(
        st.none(),
        HEADER_VALUES,
        HEADER_VALUES.map(lambda v: "Basic " + v),
        st.binary(max_size=60).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    ),
    content_type=st.sampled_from(
        [FORM, FORM + "; charset=latin-1", "application/json", "multipart/form-data", "text/plain", ""]
    ),
)
def test_random_form_bodies_and_headers_never_give_a_5xx(client, service, form, authorization, content_type):
    from urllib.parse import urlencode

    headers = {"Authorization": authorization} if authorization is not None else {}
    body = urlencode(form).encode()
    response = client.post("/token", data=body, content_type=content_type or None, headers=headers)
    assert response.status_code < 500, (form, authorization, content_type, response.get_data(as_text=True)[:200])
    if response.status_code != 200:
        assert_error(response, response.status_code)


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=200))
def test_random_raw_bodies_never_give_a_5xx(client, service, body):
    record, secret = service
    response = post_raw(client, body, basic_auth(record.client_id, secret))
    assert response.status_code < 500, (body, response.get_data(as_text=True)[:200])
    if response.status_code != 200:
        assert_error(response, response.status_code)

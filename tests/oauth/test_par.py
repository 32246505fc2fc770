"""Pushed Authorization Requests (RFC 9126).

The client pushes its authorization request to ``/par`` (authenticated as at
the token endpoint), gets a ``request_uri`` valid 60 s, and the browser brings
only that to ``/authorize``. The request is validated when pushed, cannot be
altered in the browser, survives the login and consent round trips, and gives
one authorization response. A client registered ``--require-par`` can use no
other way. Every bad input is a clear 4xx.
"""

import json
import uuid
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from authsvc.oauth import par
from tests.conftest import basic_auth
from tests.conftest import pkce_pair
from tests.conftest import query_of
from tests.dbs import store_url  # noqa: F401  (fixture)
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")

ISSUER = "http://127.0.0.1:8000"
REDIRECT = "https://rp.example/cb"
URN = "urn:ietf:params:oauth:request_uri:"


@pytest.fixture
def rp(make_client):
    return make_client("relying party")


@pytest.fixture
def signed_in(flow, make_user):
    make_user()
    response = flow.login()
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:300]


def auth_params(record, **extra) -> tuple[dict, str]:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": record.client_id,
        "redirect_uri": record.redirect_uris[0],
        "scope": "openid profile",
        "state": "st-par",
        "nonce": "n-par",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}, verifier


def push(http, record, secret, **extra):
    params, verifier = auth_params(record, **extra)
    headers = basic_auth(record.client_id, secret) if secret else {}
    return http.post("/par", data=params, headers=headers), verifier


def pushed(http, record, secret, **extra) -> tuple[str, str]:
    response, verifier = push(http, record, secret, **extra)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.json["request_uri"], verifier


def authorize_url(record, request_uri, **extra) -> str:
    return "/authorize?" + urlencode({"client_id": record.client_id, "request_uri": request_uri, **extra})


def assert_json_error(response, status, error):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.json["error"] == error
    assert response.headers["Cache-Control"] == "no-store"
    assert "Location" not in response.headers


def assert_html_error_page(response, text=None):
    assert 400 <= response.status_code < 500, response.status_code
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    if text:
        assert text in response.get_data(as_text=True)


def exchange(http, record, secret, code, verifier):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": record.redirect_uris[0]}
    data["code_verifier"] = verifier
    return http.post("/token", data=data, headers=basic_auth(record.client_id, secret))


# -- §2: the pushed authorization request endpoint -------------------------------------------


def test_rfc9126_s2_2_a_push_answers_201_with_a_request_uri(client, rp):
    record, secret = rp
    response, _ = push(client, record, secret)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    assert set(response.json) == {"request_uri", "expires_in"}
    assert response.json["expires_in"] == 60
    assert response.json["request_uri"].startswith(URN)
    assert len(response.json["request_uri"]) >= len(URN) + 43  # 256 random bits


def test_rfc9126_s2_a_confidential_client_must_authenticate(client, rp):
    record, secret = rp
    params, _ = auth_params(record)
    assert_json_error(client.post("/par", data=params), 401, "invalid_client")
    assert_json_error(
        client.post("/par", data=params, headers=basic_auth(record.client_id, "wrong")), 401, "invalid_client"
    )


def test_rfc9126_s2_a_public_client_pushes_with_its_client_id(client, flow, signed_in, make_client):
    record, _ = make_client("spa", public=True)
    request_uri, verifier = pushed(client, record, None)
    response = flow.authorize({"client_id": record.client_id, "request_uri": request_uri})
    code = query_of(response.headers["Location"])["code"]
    token = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": record.redirect_uris[0],
            "code_verifier": verifier,
            "client_id": record.client_id,
        },
    )
    assert token.status_code == 200, token.get_data(as_text=True)


def test_rfc9126_s2_private_key_jwt_works_at_par_with_its_url_as_audience(client, make_client, clock):
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": "k1"}
    record, _ = make_client("signer", auth_method="private_key_jwt", jwks=json.dumps({"keys": [jwk]}))
    now = int(clock())
    for aud in (ISSUER, ISSUER + "/token", ISSUER + "/par"):
        claims = {
            "iss": record.client_id,
            "sub": record.client_id,
            "aud": aud,
            "exp": now + 60,
            "jti": str(uuid.uuid4()),
        }
        assertion = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
        params, _ = auth_params(record)
        response = client.post(
            "/par",
            data={
                **params,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )
        assert response.status_code == 201, response.get_data(as_text=True)


@pytest.mark.parametrize(
    "extra, status, error",
    [
        ({"redirect_uri": "https://attacker.example/cb"}, 400, "invalid_request"),
        ({"redirect_uri": REDIRECT + "/more"}, 400, "invalid_request"),
        ({"response_type": "token"}, 400, "unsupported_response_type"),
        ({"response_type": None}, 400, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, 400, "invalid_request"),
        ({"prompt": "none login"}, 400, "invalid_request"),
        ({"prompt": "bogus"}, 400, "invalid_request"),
        ({"response_mode": "fragment"}, 400, "invalid_request"),
        ({"max_age": "-1"}, 400, "invalid_request"),
        ({"resource": "https://unregistered.example"}, 400, "invalid_target"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, 400, "request_not_supported"),
        ({"request_uri": URN + "abc"}, 400, "invalid_request"),
        ({"client_id": "c_someone_else"}, 400, "invalid_request"),
    ],
)
def test_rfc9126_s2_1_the_request_is_validated_like_an_authorization_request(client, rp, extra, status, error):
    """Errors are JSON answers to the client (§2.3), never redirects."""
    record, secret = rp
    response, _ = push(client, record, secret, **extra)
    assert_json_error(response, status, error)


def test_rfc9126_s2_1_a_public_client_must_use_pkce(client, make_client):
    record, _ = make_client("spa", public=True)
    response, _ = push(client, record, None, code_challenge=None, code_challenge_method=None)
    assert_json_error(response, 400, "invalid_request")


def test_rfc9126_s2_a_client_without_the_code_grant_cannot_push(client, make_client):
    record, secret = make_client("machine", grant_types=("client_credentials",), redirect_uris=())
    params = {"response_type": "code", "client_id": record.client_id, "scope": "openid"}
    response = client.post("/par", data=params, headers=basic_auth(record.client_id, secret))
    assert response.status_code == 400 and response.mimetype == "application/json"
    assert response.json["error"] in ("unauthorized_client", "invalid_request")


FORM = "application/x-www-form-urlencoded"
MALFORMED_PUSHES = {
    "json body": lambda http, auth, params: http.post("/par", json=params, headers=auth),
    "query string": lambda http, auth, params: http.post("/par?" + urlencode(params), data={}, headers=auth),
    "body and query": lambda http, auth, params: http.post("/par?state=x", data=params, headers=auth),
    "repeated scope": lambda http, auth, params: http.post(
        "/par", data=urlencode([*params.items(), ("scope", "openid")]), headers=auth, content_type=FORM
    ),
    "NUL": lambda http, auth, params: http.post("/par", data={**params, "state": "a\x00b"}, headers=auth),
    "over-long": lambda http, auth, params: http.post("/par", data={**params, "state": "s" * 5000}, headers=auth),
    "bad escape": lambda http, auth, params: http.post(
        "/par", data=urlencode(params) + "&redirect_uri=%zz", headers=auth, content_type=FORM
    ),
    "bad UTF-8": lambda http, auth, params: http.post(
        "/par", data=urlencode(params) + "&scope=%ed%b3%bf", headers=auth, content_type=FORM
    ),
    "binary body": lambda http, auth, params: http.post("/par", data=b"\xff\xfe=%ff", headers=auth, content_type=FORM),
    "GET": lambda http, auth, params: http.get("/par?" + urlencode(params), headers=auth),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_PUSHES))
def test_malformed_pushes_are_4xx(client, rp, case):
    record, secret = rp
    params, _ = auth_params(record)
    response = MALFORMED_PUSHES[case](client, basic_auth(record.client_id, secret), params)
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)


# -- §4: the authorization request with a request_uri ----------------------------------------


def test_rfc9126_s4_authorize_with_the_request_uri_gives_a_code(client, flow, signed_in, rp, settings):
    record, secret = rp
    request_uri, verifier = pushed(client, record, secret)
    response = flow.authorize({"client_id": record.client_id, "request_uri": request_uri})
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].startswith(REDIRECT + "?")
    query = query_of(response.headers["Location"])
    assert query["state"] == "st-par" and query["iss"] == settings.issuer
    token = exchange(client, record, secret, query["code"], verifier)
    assert token.status_code == 200, token.get_data(as_text=True)
    id_token = jwt.decode(token.json["id_token"], options={"verify_signature": False})
    assert id_token["nonce"] == "n-par"


def test_rfc9126_s4_only_the_pushed_parameters_count(client, flow, signed_in, rp):
    """What the browser adds to the URL cannot change the request (§4; JAR §6.3)."""
    record, secret = rp
    request_uri, verifier = pushed(client, record, secret)
    url_extra = {"redirect_uri": "https://attacker.example/cb", "scope": "openid email", "state": "evil"}
    response = flow.authorize({"client_id": record.client_id, "request_uri": request_uri, **url_extra})
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = query_of(location)
    assert query["state"] == "st-par"
    token = exchange(client, record, secret, query["code"], verifier)
    assert token.json["scope"] == "openid profile"


def test_rfc9126_s4_login_returns_to_the_short_url_and_completes(client, flow, make_user, rp):
    record, secret = rp
    make_user()
    request_uri, verifier = pushed(client, record, secret, prompt="login", max_age="0")
    start = client.get(authorize_url(record, request_uri))
    assert start.status_code == 303 and start.headers["Location"].startswith("/login?")
    return_to = query_of(start.headers["Location"])["return_to"]
    # The login page comes back with client_id and request_uri only: the parameters stay pushed.
    assert query_of(return_to) == {"client_id": record.client_id, "request_uri": request_uri}
    logged_in = flow.login(return_to=return_to)
    assert logged_in.headers["Location"] == return_to
    # prompt=login and max_age=0 were satisfied by that sign-in: no loop back to /login.
    response = flow.authorize(query_of(return_to))
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    code = query_of(response.headers["Location"])["code"]
    assert exchange(client, record, secret, code, verifier).status_code == 200


def test_rfc9126_s4_a_sign_in_before_the_push_does_not_satisfy_prompt_login(client, flow, signed_in, rp, clock):
    record, secret = rp
    clock.advance(5)
    request_uri, _ = pushed(client, record, secret, prompt="login")
    response = client.get(authorize_url(record, request_uri))
    assert response.status_code == 303 and response.headers["Location"].startswith("/login?")


def test_rfc9126_s4_the_consent_page_posts_back_to_the_short_url(client, flow, signed_in, rp):
    record, secret = rp
    request_uri, _ = pushed(client, record, secret)
    page = client.get(authorize_url(record, request_uri))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="decision"' in html
    assert "redirect_uri" not in html.split("<form", 1)[1].split(">", 1)[0]


@pytest.mark.parametrize(
    "request_uri",
    [
        URN + "unknown",
        "https://attacker.example/request.jwt",
        "urn:ietf:params:oauth:request_uri:",
        "",
        "%zz",
        "\u00e9" * 10,
    ],
)
def test_rfc9126_s4_an_unknown_request_uri_is_an_error_page(client, signed_in, rp, request_uri):
    record, _ = rp
    assert_html_error_page(client.get(authorize_url(record, request_uri)))


def test_rfc9126_s4_request_uri_needs_client_id(client, signed_in, rp):
    record, secret = rp
    request_uri, _ = pushed(client, record, secret)
    assert_html_error_page(client.get("/authorize?" + urlencode({"request_uri": request_uri})))


def test_rfc9126_s4_another_client_cannot_use_the_request_uri(client, signed_in, rp, make_client):
    record, secret = rp
    other, _ = make_client("other")
    request_uri, _ = pushed(client, record, secret)
    assert_html_error_page(client.get(authorize_url(other, request_uri)), "request_uri")


def test_rfc9126_s2_2_the_request_uri_expires_after_60_seconds(client, signed_in, rp, clock):
    record, secret = rp
    request_uri, _ = pushed(client, record, secret)
    clock.advance(61)
    assert_html_error_page(client.get(authorize_url(record, request_uri)))


def test_rfc9126_s7_3_the_request_uri_gives_one_response(client, flow, signed_in, rp):
    record, secret = rp
    request_uri, _ = pushed(client, record, secret)
    first = flow.authorize({"client_id": record.client_id, "request_uri": request_uri})
    assert "code" in query_of(first.headers["Location"])
    assert_html_error_page(client.get(authorize_url(record, request_uri)))


def test_rfc9126_s7_3_two_tabs_get_one_code(client, flow, signed_in, rp, services, monkeypatch):
    """Both consent pages were shown; the second decision finds the request used."""
    record, secret = rp
    request_uri, _ = pushed(client, record, secret)
    path = authorize_url(record, request_uri)
    token_a, token_b = flow.csrf(path), flow.csrf(path)
    first = client.post(path, data={"decision": "allow", "csrf_token": token_a})
    assert "code" in query_of(first.headers["Location"])
    second = client.post(path, data={"decision": "allow", "csrf_token": token_b})
    assert_html_error_page(second)


def test_rfc9126_s7_3_a_tab_racing_past_the_read_gets_no_code(client, flow, signed_in, rp, services, monkeypatch):
    """The second tab read the request before the first consumed it: the consuming UPDATE decides."""
    record, secret = rp
    request_uri, _ = pushed(client, record, secret)
    path = authorize_url(record, request_uri)
    read_early = services.store.get_pushed_request(par.request_uri_hash(request_uri), services.clock())
    token_a, token_b = flow.csrf(path), flow.csrf(path)
    assert "code" in query_of(client.post(path, data={"decision": "allow", "csrf_token": token_a}).headers["Location"])
    monkeypatch.setattr(services.store, "get_pushed_request", lambda *args: read_early)
    second = client.post(path, data={"decision": "allow", "csrf_token": token_b})
    assert second.status_code == 302
    query = query_of(second.headers["Location"])
    assert query["error"] == "invalid_request_uri" and "code" not in query
    assert query["state"] == "st-par"


def test_rfc9126_s7_3_a_denial_uses_the_request_too(client, flow, signed_in, rp):
    record, secret = rp
    request_uri, _ = pushed(client, record, secret)
    denied = flow.authorize({"client_id": record.client_id, "request_uri": request_uri}, decision="deny")
    assert query_of(denied.headers["Location"])["error"] == "access_denied"
    assert_html_error_page(client.get(authorize_url(record, request_uri)))


def test_request_objects_are_not_supported_at_authorize(client, signed_in, rp):
    record, _ = rp
    response = client.get("/authorize?" + urlencode({"client_id": record.client_id, "request": "e30.e30."}))
    assert_html_error_page(response, "not supported")


# -- per client: --require-par ---------------------------------------------------------------


@pytest.fixture
def par_only(make_client, services):
    from dataclasses import replace

    record, secret = make_client("strict")
    record = services.store.update_client(record.client_id, lambda c: replace(c, require_par=True))
    return record, secret


def test_require_par_refuses_a_plain_authorization_request(client, flow, signed_in, par_only):
    record, _ = par_only
    params, _ = auth_params(record)
    response = client.get("/authorize?" + urlencode(params))
    assert_html_error_page(response, "push")


def test_require_par_accepts_a_pushed_request(client, flow, signed_in, par_only):
    record, secret = par_only
    request_uri, verifier = pushed(client, record, secret)
    response = flow.authorize({"client_id": record.client_id, "request_uri": request_uri})
    code = query_of(response.headers["Location"])["code"]
    assert exchange(client, record, secret, code, verifier).status_code == 200


def test_cli_registers_require_par(cli, store):
    code, out, err = cli(
        "clients", "create", "--name", "strict", "--redirect-uri", REDIRECT, "--require-par", "--json"
    )  # fmt: skip
    assert code == 0, err
    client_id = json.loads(out)["client_id"]
    assert store.get_client(client_id).require_par is True
    code, out, _ = cli("clients", "list", "--json")
    assert next(c for c in json.loads(out) if c["client_id"] == client_id)["require_par"] is True


# -- discovery and the store -------------------------------------------------------------


def test_rfc9126_s5_discovery_lists_the_endpoint(client, settings):
    doc = client.get("/.well-known/openid-configuration").json
    assert doc["pushed_authorization_request_endpoint"] == settings.issuer + "/par"
    assert doc["require_pushed_authorization_requests"] is False
    assert client.get("/.well-known/oauth-authorization-server").json["pushed_authorization_request_endpoint"]


def test_the_store_keeps_a_hash_and_purges_expired_requests(client, rp, services, clock):
    record, secret = rp
    request_uri, _ = pushed(client, record, secret)
    from authsvc.store.schema import pushed_requests

    with services.store._engine.connect() as conn:
        rows = conn.execute(pushed_requests.select()).all()
    assert len(rows) == 1 and request_uri not in json.dumps([tuple(map(str, r)) for r in rows])
    assert rows[0].request_uri_hash == par.request_uri_hash(request_uri)
    services.store.purge_expired(clock() + 30)
    with services.store._engine.connect() as conn:
        assert len(conn.execute(pushed_requests.select()).all()) == 1
    services.store.purge_expired(clock() + 61)
    with services.store._engine.connect() as conn:
        assert conn.execute(pushed_requests.select()).all() == []


def test_consume_wins_once_for_the_client_that_pushed(services, rp, client, clock):
    record, secret = rp
    request_uri, _ = pushed(client, record, secret)
    digest = par.request_uri_hash(request_uri)
    assert services.store.consume_pushed_request(digest, "c_other", clock()) is False
    assert services.store.consume_pushed_request(digest, record.client_id, clock() + 61) is False  # expired
    assert services.store.consume_pushed_request(digest, record.client_id, clock()) is True
    assert services.store.consume_pushed_request(digest, record.client_id, clock()) is False


# -- the store, on every backend ---------------------------------------------------------


@pytest.fixture
def backend_store(store_url):  # noqa: F811
    from authsvc.store import Client
    from authsvc.store import open_store

    opened = open_store(store_url)
    opened.upgrade()
    opened.create_client(Client(client_id="c1", name="One"))
    yield opened
    opened.close()


def test_store_pushed_requests_are_read_until_consumed_once(backend_store):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from authsvc.errors import NotFound
    from authsvc.store.sql_pushed_requests import PushedRequest

    now = 1_700_000_000.0
    backend_store.create_pushed_request(PushedRequest("h1", "c1", {"scope": "openid", "state": "é"}, now + 60))
    read = backend_store.get_pushed_request("h1", now)
    assert read.params == {"scope": "openid", "state": "é"} and read.client_id == "c1"
    assert backend_store.get_pushed_request("h1", now + 10).request_uri_hash == "h1"  # read again: a reload
    barrier = Barrier(8, timeout=10)

    def consume(_):
        barrier.wait()
        return backend_store.consume_pushed_request("h1", "c1", now + 1)

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(consume, range(8))) == [False] * 7 + [True]
    with pytest.raises(NotFound):
        backend_store.get_pushed_request("h1", now + 2)
    with pytest.raises(NotFound):
        backend_store.create_pushed_request(PushedRequest("h2", "c_unknown", {}, now + 60))
    with pytest.raises(ValueError):
        backend_store.create_pushed_request(PushedRequest("h3", "c1", {"state": "a\x00b"}, now + 60))
    backend_store.create_pushed_request(PushedRequest("h4", "c1", {}, now + 60))
    assert backend_store.purge_expired(now + 61) >= 2
    with pytest.raises(NotFound):
        backend_store.get_pushed_request("h4", now)

"""Authorization codes bound to a DPoP key (RFC 9449 §10, §10.1).

A client binds the code to its DPoP key before the code exists: with ``dpop_jkt`` in the
authorization request (at ``/authorize`` or pushed to ``/par``), or with a DPoP proof sent to
``/par``. The code is then exchanged only with a proof by that key: a thief holding the code
but not the key gets ``invalid_grant``, and the attempt does not use the code up.
"""

import logging
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from authsvc.app import create_app
from authsvc.services import build
from authsvc.store import AuthorizationCode
from authsvc.store import migrate
from authsvc.store import open_store
from authsvc.store import schema
from tests.conftest import basic_auth
from tests.conftest import pkce_pair
from tests.conftest import query_of
from tests.dpop_keys import DPoPKey
from tests.oauth_calls import quick_user
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401
from tests.oidc import unverified

ISSUER = "http://127.0.0.1:8000"
TOKEN_URL = ISSUER + "/token"
PAR_URL = ISSUER + "/par"


@pytest.fixture
def key_a(clock):
    return DPoPKey("ES256", clock=clock)


@pytest.fixture
def key_b(clock):
    return DPoPKey("ES256", clock=clock)


@pytest.fixture
def spa(make_client, services, flow):
    """A public client, and a signed-in user who approved it already (first party)."""
    quick_user(services)
    assert flow.login().status_code in (302, 303)
    record, _ = make_client("spa", public=True, first_party=True)
    return record


def auth_params(record, **extra) -> tuple[dict, str]:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": record.client_id,
        "redirect_uri": record.redirect_uris[0],
        "scope": "openid offline_access",
        "state": "st-dpop",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return params, verifier


def push(http, record, proof=None, **extra):
    params, verifier = auth_params(record, **extra)
    return http.post("/par", data=params, headers={"DPoP": proof} if proof else {}), verifier


def pushed_code(http, flow, record, proof=None, **extra) -> tuple[str, str]:
    """Push, authorize with the request_uri, return (code, verifier)."""
    response, verifier = push(http, record, proof, **extra)
    assert response.status_code == 201, response.get_data(as_text=True)
    authorized = flow.authorize({"client_id": record.client_id, "request_uri": response.json["request_uri"]})
    assert authorized.status_code == 302, authorized.get_data(as_text=True)[:300]
    return query_of(authorized.headers["Location"])["code"], verifier


def exchange(http, record, code, verifier, proof=None):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": record.redirect_uris[0],
        "code_verifier": verifier,
        "client_id": record.client_id,
    }
    return http.post("/token", data=data, headers={"DPoP": proof} if proof else {})


def assert_error(response, error, status=400):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == error, body
    assert body["error_description"]
    assert "access_token" not in body and "request_uri" not in body
    return body


def assert_bound_to(response, key):
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["token_type"] == "DPoP"
    assert unverified(body["access_token"])["cnf"] == {"jkt": key.jkt}


# §10.1: a DPoP proof sent to /par binds the code to the proof's key.


def test_rfc9449_10_1_a_code_pushed_with_key_a_is_refused_with_key_b_and_still_works_with_a(
    client, flow, spa, key_a, key_b
):
    code, verifier = pushed_code(client, flow, spa, key_a.proof("POST", PAR_URL))

    body = assert_error(exchange(client, spa, code, verifier, key_b.proof("POST", TOKEN_URL)), "invalid_grant")
    assert "DPoP key" in body["error_description"]
    # The thief's attempt did not use the code up: its rightful holder exchanges it.
    assert_bound_to(exchange(client, spa, code, verifier, key_a.proof("POST", TOKEN_URL)), key_a)


def test_rfc9449_10_1_a_code_pushed_with_a_proof_is_refused_without_one(client, flow, spa, key_a):
    code, verifier = pushed_code(client, flow, spa, key_a.proof("POST", PAR_URL))

    assert_error(exchange(client, spa, code, verifier), "invalid_grant")
    assert_bound_to(exchange(client, spa, code, verifier, key_a.proof("POST", TOKEN_URL)), key_a)


def test_rfc9449_10_1_a_confidential_client_pushing_with_a_proof_is_bound_too(client, flow, spa, make_client, key_a):
    record, secret = make_client("web", first_party=True)
    params, verifier = auth_params(record)
    headers = {**basic_auth(record.client_id, secret), "DPoP": key_a.proof("POST", PAR_URL)}
    response = client.post("/par", data=params, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    authorized = flow.authorize({"client_id": record.client_id, "request_uri": response.json["request_uri"]})
    code = query_of(authorized.headers["Location"])["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": record.redirect_uris[0]}
    data["code_verifier"] = verifier

    assert_error(client.post("/token", data=data, headers=basic_auth(record.client_id, secret)), "invalid_grant")
    headers = {**basic_auth(record.client_id, secret), "DPoP": key_a.proof("POST", TOKEN_URL)}
    assert_bound_to(client.post("/token", data=data, headers=headers), key_a)


@pytest.mark.parametrize(
    "proof",
    [
        "not-a-jwt",
        "eyJhbGciOiJub25lIn0.e30.",
        pytest.param("token url", id="htu is the token endpoint"),
        pytest.param("GET", id="htm is GET"),
        pytest.param("two", id="two proofs"),
    ],
)
def test_rfc9449_10_1_a_bad_proof_at_par_is_400_invalid_dpop_proof(client, spa, key_a, proof):
    proof = {
        "token url": key_a.proof("POST", TOKEN_URL),
        "GET": key_a.proof("GET", PAR_URL),
        "two": key_a.proof("POST", PAR_URL) + ", " + key_a.proof("POST", PAR_URL),
    }.get(proof, proof)
    response, _ = push(client, spa, proof)
    assert_error(response, "invalid_dpop_proof")
    assert response.headers["Cache-Control"] == "no-store"
    assert "Location" not in response.headers


def test_rfc9449_11_1_a_proof_is_used_once_at_par_too(client, spa, key_a):
    proof = key_a.proof("POST", PAR_URL)
    assert push(client, spa, proof)[0].status_code == 201
    assert_error(push(client, spa, proof)[0], "invalid_dpop_proof")


def test_rfc9449_10_1_a_dpop_jkt_that_differs_from_the_proof_is_400_invalid_dpop_proof(
    client, spa, key_a, key_b, caplog
):
    caplog.set_level(logging.INFO, logger="authsvc")
    response, _ = push(client, spa, key_a.proof("POST", PAR_URL), dpop_jkt=key_b.jkt)

    assert_error(response, "invalid_dpop_proof")
    [event] = [r for r in caplog.records if getattr(r, "event", None) == "dpop.proof_rejected"]
    assert event.reason == "dpop_jkt_mismatch" and event.client_id == spa.client_id


def test_rfc9449_10_1_a_dpop_jkt_that_matches_the_proof_is_accepted(client, flow, spa, key_a, key_b):
    code, verifier = pushed_code(client, flow, spa, key_a.proof("POST", PAR_URL), dpop_jkt=key_a.jkt)

    assert_error(exchange(client, spa, code, verifier, key_b.proof("POST", TOKEN_URL)), "invalid_grant")
    assert_bound_to(exchange(client, spa, code, verifier, key_a.proof("POST", TOKEN_URL)), key_a)


def test_rfc9449_10_1_dpop_jkt_pushed_without_a_proof_binds_the_code(client, flow, spa, key_a, key_b):
    code, verifier = pushed_code(client, flow, spa, dpop_jkt=key_a.jkt)

    assert_error(exchange(client, spa, code, verifier, key_b.proof("POST", TOKEN_URL)), "invalid_grant")
    assert_bound_to(exchange(client, spa, code, verifier, key_a.proof("POST", TOKEN_URL)), key_a)


def test_rfc9449_10_1_a_malformed_dpop_jkt_at_par_is_400_invalid_request(client, spa):
    response, _ = push(client, spa, dpop_jkt="too-short")
    assert_error(response, "invalid_request")


def test_rfc9449_10_1_a_push_without_proof_or_dpop_jkt_gives_an_unbound_code(client, flow, spa, key_b):
    code, verifier = pushed_code(client, flow, spa)
    # Unbound: the proof at the token endpoint chooses the key, as before.
    assert_bound_to(exchange(client, spa, code, verifier, key_b.proof("POST", TOKEN_URL)), key_b)


# §8: server nonces are asked for where tokens are issued; the proof at /par only names the key.


@pytest.fixture
def nonce_http(settings, clock, keyring, store):  # noqa: F811
    services = build(settings.with_overrides(dpop_nonce_required=True), clock=clock, keyring=keyring)
    yield create_app(services=services).test_client()
    services.close()


def test_rfc9449_8_with_nonces_required_par_takes_a_proof_without_one_and_token_still_asks(
    nonce_http, flow, spa, key_a
):
    response, verifier = push(nonce_http, spa, key_a.proof("POST", PAR_URL))
    assert response.status_code == 201, response.get_data(as_text=True)
    assert "DPoP-Nonce" not in response.headers
    authorized = flow.authorize({"client_id": spa.client_id, "request_uri": response.json["request_uri"]})
    code = query_of(authorized.headers["Location"])["code"]

    first = exchange(nonce_http, spa, code, verifier, key_a.proof("POST", TOKEN_URL))
    assert_error(first, "use_dpop_nonce")
    nonce = first.headers["DPoP-Nonce"]
    assert_bound_to(exchange(nonce_http, spa, code, verifier, key_a.proof("POST", TOKEN_URL, nonce=nonce)), key_a)


# §10: dpop_jkt at the authorization endpoint.


def authorize_code(flow, record, **extra) -> tuple[str, str]:
    params, verifier = auth_params(record, **extra)
    response = flow.authorize(params)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return query_of(response.headers["Location"])["code"], verifier


def test_rfc9449_10_dpop_jkt_at_authorize_binds_the_code(client, flow, spa, key_a, key_b, caplog):
    caplog.set_level(logging.INFO, logger="authsvc")
    code, verifier = authorize_code(flow, spa, dpop_jkt=key_a.jkt)

    assert_error(exchange(client, spa, code, verifier), "invalid_grant")
    assert_error(exchange(client, spa, code, verifier, key_b.proof("POST", TOKEN_URL)), "invalid_grant")
    assert_bound_to(exchange(client, spa, code, verifier, key_a.proof("POST", TOKEN_URL)), key_a)
    events = [r for r in caplog.records if getattr(r, "event", None) == "code.dpop_key_mismatch"]
    assert [(e.client_id, e.proof) for e in events] == [(spa.client_id, False), (spa.client_id, True)]


@pytest.mark.parametrize("dpop_jkt", ["", "too-short", "A" * 44, "+" * 43, "é" * 43])
def test_rfc9449_10_a_malformed_dpop_jkt_at_authorize_is_an_invalid_request_redirect(client, spa, dpop_jkt):
    """RFC 6749 §4.1.2.1: the client and redirect URI are valid, so the error goes back to the client."""
    params, _ = auth_params(spa, dpop_jkt=dpop_jkt)
    response = client.get("/authorize?" + urlencode(params))

    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert response.headers["Location"].startswith(spa.redirect_uris[0] + "?")
    query = query_of(response.headers["Location"])
    assert query["error"] == "invalid_request" and query["state"] == "st-dpop" and query["iss"] == ISSUER
    assert "code" not in query


def test_rfc9449_10_a_malformed_dpop_jkt_with_an_unknown_redirect_uri_is_an_error_page(client, spa):
    params, _ = auth_params(spa, dpop_jkt="too-short", redirect_uri="https://attacker.example/cb")
    response = client.get("/authorize?" + urlencode(params))

    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "Location" not in response.headers


# The store: a code bound to a key is used up only by a request holding that key.


def _code(**fields) -> AuthorizationCode:
    values = {
        "code_hash": "ch1",
        "client_id": "c1",
        "sub": "u1",
        "redirect_uri": "https://rp.example/cb",
        "scope": "openid",
        "expires_at": 1_000_060.0,
        "auth_time": 1_000_000.0,
    }
    return AuthorizationCode(**{**values, **fields})


def test_rfc9449_10_store_consumes_a_bound_code_only_with_its_key(services, make_client):
    store = services.store
    record, _ = make_client("web")
    store.create_code(_code(client_id=record.client_id, dpop_jkt="A" * 43))
    now = 1_000_010.0

    for other in (None, "B" * 43):
        left, won = store.consume_code("ch1", now, dpop_jkt=other)
        assert not won and left.used_at is None and left.dpop_jkt == "A" * 43
    used, won = store.consume_code("ch1", now, dpop_jkt="A" * 43)
    assert won and used.used_at == now
    replay, won = store.consume_code("ch1", now + 1, dpop_jkt="B" * 43)
    assert not won and replay.used_at == now
    # Expired unused, whatever the key: nothing to return.
    store.create_code(_code(code_hash="ch2", client_id=record.client_id, dpop_jkt="A" * 43))
    assert store.consume_code("ch2", 1_000_060.0, dpop_jkt="B" * 43) == (None, False)


def test_version_6_database_keeps_its_codes_through_step_7(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'v6.db'}")
    try:
        with store._engine.begin() as conn:
            schema.schema_migrations.create(conn)
            for version, name, step in migrate.STEPS[:6]:
                step(conn)
                conn.execute(sa.insert(schema.schema_migrations).values(version=version, name=name, applied_at=1.0))
            conn.exec_driver_sql(
                "INSERT INTO clients (client_id, name, redirect_uris, post_logout_redirect_uris, grant_types, "
                "scope, token_endpoint_auth_method, first_party, id_token_signed_response_alg, audiences, "
                "created_at) VALUES ('c1', 'old', '[]', '[]', '[]', '', 'none', false, 'RS256', '[]', 1.0)"
            )
            conn.exec_driver_sql(
                "INSERT INTO authorization_codes (code_hash, client_id, sub, redirect_uri, scope, expires_at, "
                "auth_time) VALUES ('ch1', 'c1', 'u1', 'https://rp.example/cb', 'openid', 1000060.0, 1000000.0)"
            )
        assert store.upgrade() == ["authorization codes bound to a DPoP key"]
        record, won = store.consume_code("ch1", 1_000_010.0)
        assert won and record.dpop_jkt is None
    finally:
        store.close()

"""DPoP (RFC 9449) at the token endpoint: proofs checked per §4.3, tokens bound per §5/§6,
server nonces per §8, one-time jti across instances per §11.1, public clients' refresh
tokens bound to the key, ``--dpop-bound`` clients, and the discovery field (§5.1).
"""

import json
from dataclasses import replace

import pytest

from authsvc.app import create_app
from authsvc.oauth.dpop import thumbprint
from authsvc.services import build
from tests.conftest import basic_auth
from tests.dpop_keys import DROP
from tests.dpop_keys import DPoPKey
from tests.oauth_calls import quick_user
from tests.oidc import jwks_decode
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401
from tests.oidc import unverified

ISSUER = "http://127.0.0.1:8000"
TOKEN_URL = ISSUER + "/token"
CC = {"grant_type": "client_credentials"}


@pytest.fixture
def key(clock):
    return DPoPKey("ES256", clock=clock)


@pytest.fixture
def service(make_client):
    return make_client("billing", grant_types=("client_credentials",), redirect_uris=(), scope="api:read")


def cc_request(http, service, proof=None, **headers):
    record, secret = service
    if proof is not None:
        headers["DPoP"] = proof
    return http.post("/token", data=CC, headers={**basic_auth(record.client_id, secret), **headers})


def assert_refused(response, error="invalid_dpop_proof", status=400):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == error, body
    assert body["error_description"]
    assert "access_token" not in body
    return body


# §5, §6.1: a proof binds the access token to its key.


def test_rfc9449_5_a_token_request_with_a_proof_gets_a_dpop_bound_token(client, service, key):
    response = cc_request(client, service, key.proof("POST", TOKEN_URL))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "DPoP"
    claims = jwks_decode(client, body["access_token"], audience=ISSUER, issuer=ISSUER)
    assert claims["cnf"] == {"jkt": key.jkt}


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256", "PS256"])
def test_rfc9449_4_2_every_listed_algorithm_is_accepted(client, service, clock, alg):
    key = DPoPKey(alg, clock=clock)
    body = cc_request(client, service, key.proof("POST", TOKEN_URL)).get_json()
    assert body["token_type"] == "DPoP"
    assert unverified(body["access_token"])["cnf"]["jkt"] == key.jkt


def test_without_a_proof_the_token_stays_a_bearer_token(client, service):
    body = cc_request(client, service).get_json()
    assert body["token_type"] == "Bearer"
    assert "cnf" not in unverified(body["access_token"])


def test_rfc7638_3_1_thumbprint_of_the_rfc_example_key():
    # The RSA key of RFC 7638 §3.1, whose thumbprint the RFC gives.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJE"
            "CPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Q"
            "vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6"
            "WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc9449_4_3_htu_ignores_query_and_fragment_and_normalises(client, service, key):
    for htu in (TOKEN_URL + "?x=1", TOKEN_URL + "#f", "HTTP://127.0.0.1:8000/%74oken"):
        response = cc_request(client, service, key.proof("POST", htu))
        assert response.status_code == 200, (htu, response.get_json())


# §4.3: each check refuses a bad proof with invalid_dpop_proof, spending nothing.


def _other_key(key):
    return DPoPKey("ES256", clock=key.clock).private_key


BAD_PROOFS = {
    "typ_jwt": lambda k: k.proof("POST", TOKEN_URL, header={"typ": "JWT"}),
    "typ_missing": lambda k: k.proof("POST", TOKEN_URL, header={"typ": DROP}),
    "alg_none": lambda k: _unsigned(k),
    "alg_hs256": lambda k: _hmac_signed(k),
    "alg_not_matching_key": lambda k: k.proof("POST", TOKEN_URL, header={"alg": "RS256"}),
    "jwk_missing": lambda k: k.proof("POST", TOKEN_URL, header={"jwk": DROP}),
    "jwk_private": lambda k: k.proof("POST", TOKEN_URL, header={"jwk": k.private_jwk}),
    "jwk_symmetric": lambda k: k.proof("POST", TOKEN_URL, header={"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
    "jwk_not_on_curve": lambda k: k.proof("POST", TOKEN_URL, header={"jwk": {**k.public_jwk, "y": k.public_jwk["x"]}}),
    "jku_header": lambda k: k.proof("POST", TOKEN_URL, header={"jku": "https://evil.example/jwks"}),
    "signed_by_another_key": lambda k: k.proof("POST", TOKEN_URL, signing_key=_other_key(k)),
    "htm_get": lambda k: k.proof("GET", TOKEN_URL),
    "htm_lowercase": lambda k: k.proof("post", TOKEN_URL),
    "htu_other_path": lambda k: k.proof("POST", ISSUER + "/revoke"),
    "htu_other_host": lambda k: k.proof("POST", "http://evil.example:8000/token"),
    "htu_https": lambda k: k.proof("POST", "https://127.0.0.1:8000/token"),
    "htu_not_a_url": lambda k: k.proof("POST", "token"),
    "iat_stale": lambda k: k.proof("POST", TOKEN_URL, claims={"iat": int(k.clock()) - 120}),
    "iat_future": lambda k: k.proof("POST", TOKEN_URL, claims={"iat": int(k.clock()) + 120}),
    "iat_string": lambda k: k.proof("POST", TOKEN_URL, claims={"iat": str(int(k.clock()))}),
    "iat_missing": lambda k: k.proof("POST", TOKEN_URL, claims={"iat": DROP}),
    "jti_missing": lambda k: k.proof("POST", TOKEN_URL, claims={"jti": DROP}),
    "jti_empty": lambda k: k.proof("POST", TOKEN_URL, claims={"jti": ""}),
    "jti_number": lambda k: k.proof("POST", TOKEN_URL, claims={"jti": 7}),
    "htm_missing": lambda k: k.proof("POST", TOKEN_URL, claims={"htm": DROP}),
    "htu_missing": lambda k: k.proof("POST", TOKEN_URL, claims={"htu": DROP}),
    "not_a_jws": lambda k: "not-a-jwt",
    "garbage_segments": lambda k: "e30.e30.e30",
    "too_long": lambda k: "a" * 9000 + ".b.c",
    "duplicate_header_member": lambda k: _duplicate_typ(k),
    "weak_rsa": lambda k: DPoPKey("RS256", rsa_bits=1024, clock=k.clock).proof("POST", TOKEN_URL),
}


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(k) -> dict:
    return {"jti": "j-" + str(id(k)), "htm": "POST", "htu": TOKEN_URL, "iat": int(k.clock())}


def _unsigned(k) -> str:
    head = {"typ": "dpop+jwt", "alg": "none", "jwk": k.public_jwk}
    return f"{_b64(json.dumps(head).encode())}.{_b64(json.dumps(_claims(k)).encode())}."


def _hmac_signed(k) -> str:
    import jwt

    return jwt.encode(
        _claims(k),
        "a-shared-secret-of-32-bytes-long!",
        algorithm="HS256",
        headers={
            "typ": "dpop+jwt",
            "jwk": {"kty": "oct", "k": _b64(b"a-shared-secret-of-32-bytes-long!")},
        },
    )


def _duplicate_typ(k) -> str:
    import jwt as pyjwt

    jwk = json.dumps(k.public_jwk)
    head = '{"typ":"JWT","alg":"ES256","jwk":' + jwk + ',"typ":"dpop+jwt"}'
    signing_input = f"{_b64(head.encode())}.{_b64(json.dumps(_claims(k)).encode())}"
    signature = pyjwt.get_algorithm_by_name("ES256").sign(signing_input.encode(), k.private_key)
    return f"{signing_input}.{_b64(signature)}"


@pytest.mark.parametrize("name", sorted(BAD_PROOFS))
def test_rfc9449_4_3_a_bad_proof_is_invalid_dpop_proof(client, service, key, name):
    assert_refused(cc_request(client, service, BAD_PROOFS[name](key)))


def test_rfc9449_4_3_step_1_two_dpop_headers_are_refused(client, service, key):
    record, secret = service
    response = client.post(
        "/token",
        data=CC,
        headers=[
            *basic_auth(record.client_id, secret).items(),
            ("DPoP", key.proof("POST", TOKEN_URL)),
            ("DPoP", key.proof("POST", TOKEN_URL)),
        ],
    )
    assert_refused(response)


def test_rfc9449_4_3_a_bad_proof_spends_no_authorization_code(client, flow, services, make_client, key):
    quick_user(services)
    record, _ = make_client("spa", public=True, first_party=True)
    flow.login()
    code, verifier, _ = flow.code(record, scope="openid offline_access")

    assert_refused(_exchange(client, record, code, verifier, key.proof("GET", TOKEN_URL)))
    response = _exchange(client, record, code, verifier, key.proof("POST", TOKEN_URL))

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["token_type"] == "DPoP"


# §11.1: a proof is used once, on any instance.


def test_rfc9449_11_1_a_replayed_proof_is_refused(client, service, key):
    proof = key.proof("POST", TOKEN_URL)
    assert cc_request(client, service, proof).status_code == 200
    body = assert_refused(cc_request(client, service, proof))
    assert "used already" in body["error_description"]


def test_rfc9449_11_1_a_proof_replayed_to_another_instance_is_refused(client, service, key, settings, clock, keyring):  # noqa: F811
    # A second instance: its own Services and app, the same database and key ring.
    other = build(settings, clock=clock, keyring=keyring)
    try:
        other_http = create_app(services=other).test_client()
        proof = key.proof("POST", TOKEN_URL)
        assert cc_request(client, service, proof).status_code == 200
        assert_refused(cc_request(other_http, service, proof))
        # A fresh proof works on the other instance.
        assert cc_request(other_http, service, key.proof("POST", TOKEN_URL)).status_code == 200
    finally:
        other.close()


# §8: server nonces.


@pytest.fixture
def nonce_app(settings, clock, keyring, store):  # noqa: F811
    services = build(settings.with_overrides(dpop_nonce_required=True), clock=clock, keyring=keyring)
    yield create_app(services=services)
    services.close()


@pytest.fixture
def nonce_client(nonce_app):
    return nonce_app.test_client()


def test_rfc9449_8_without_the_nonce_the_answer_is_use_dpop_nonce_then_the_retry_succeeds(nonce_client, service, key):
    first = cc_request(nonce_client, service, key.proof("POST", TOKEN_URL))

    assert_refused(first, "use_dpop_nonce")
    nonce = first.headers["DPoP-Nonce"]
    assert nonce and first.headers.getlist("DPoP-Nonce") == [nonce]
    second = cc_request(nonce_client, service, key.proof("POST", TOKEN_URL, nonce=nonce))
    assert second.status_code == 200, second.get_json()
    assert second.get_json()["token_type"] == "DPoP"
    # §8.2: a successful answer carries the nonce for the next request.
    assert second.headers["DPoP-Nonce"]


def test_rfc9449_8_a_nonce_is_good_for_its_period_and_the_next_only(nonce_client, service, key, clock):
    nonce = cc_request(nonce_client, service, key.proof("POST", TOKEN_URL)).headers["DPoP-Nonce"]
    clock.advance(60)
    assert cc_request(nonce_client, service, key.proof("POST", TOKEN_URL, nonce=nonce)).status_code == 200
    clock.advance(60)
    stale = cc_request(nonce_client, service, key.proof("POST", TOKEN_URL, nonce=nonce))
    assert_refused(stale, "use_dpop_nonce")
    assert stale.headers["DPoP-Nonce"] != nonce


@pytest.mark.parametrize("nonce", ["forged", "", "é"])
def test_rfc9449_8_a_forged_nonce_is_refused(nonce_client, service, key, nonce):
    assert_refused(cc_request(nonce_client, service, key.proof("POST", TOKEN_URL, nonce=nonce)), "use_dpop_nonce")


def test_rfc9449_8_a_nonce_from_one_instance_works_on_another(nonce_client, service, key, settings, clock, keyring):  # noqa: F811
    other = build(settings.with_overrides(dpop_nonce_required=True), clock=clock, keyring=keyring)
    try:
        other_http = create_app(services=other).test_client()
        nonce = cc_request(nonce_client, service, key.proof("POST", TOKEN_URL)).headers["DPoP-Nonce"]
        assert cc_request(other_http, service, key.proof("POST", TOKEN_URL, nonce=nonce)).status_code == 200
    finally:
        other.close()


def test_rfc9449_8_a_use_dpop_nonce_answer_spends_no_authorization_code(nonce_client, services, make_client, key):
    from tests.conftest import Flow

    quick_user(services)
    record, _ = make_client("spa", public=True, first_party=True)
    flow = Flow(nonce_client)
    flow.login()
    code, verifier, _ = flow.code(record, scope="openid offline_access")

    first = _exchange(nonce_client, record, code, verifier, key.proof("POST", TOKEN_URL))
    assert_refused(first, "use_dpop_nonce")
    proof = key.proof("POST", TOKEN_URL, nonce=first.headers["DPoP-Nonce"])
    second = _exchange(nonce_client, record, code, verifier, proof)

    assert second.status_code == 200, second.get_json()


def test_nonces_are_off_by_default(client, service, key):
    response = cc_request(client, service, key.proof("POST", TOKEN_URL))
    assert response.status_code == 200
    assert "DPoP-Nonce" not in response.headers


# §5.2 dpop_bound_access_tokens: a client registered with --dpop-bound always uses DPoP.


@pytest.fixture
def bound_service(make_client, services):
    record, secret = make_client("bound", grant_types=("client_credentials",), redirect_uris=(), scope="api:read")
    record = services.store.update_client(record.client_id, lambda c: replace(c, dpop_bound=True))
    return record, secret


def test_rfc9449_5_2_a_dpop_bound_client_without_a_proof_is_refused(client, bound_service, key):
    assert_refused(cc_request(client, bound_service))
    assert cc_request(client, bound_service, key.proof("POST", TOKEN_URL)).get_json()["token_type"] == "DPoP"


def test_cli_clients_create_dpop_bound(cli, store):
    status, out, err = cli("clients", "create", "--name", "bound", "--dpop-bound", "--json")
    assert status == 0, err
    client_id = json.loads(out)["client_id"]
    assert store.get_client(client_id).dpop_bound is True
    status, out, _ = cli("clients", "list", "--json")
    assert {c["client_id"]: c["dpop_bound"] for c in json.loads(out)}[client_id] is True


# §5: a public client's refresh token is bound to the proof's key.


def _exchange(http, record, code, verifier, proof=None):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": record.redirect_uris[0],
        "code_verifier": verifier,
        "client_id": record.client_id,
    }
    return http.post("/token", data=data, headers={"DPoP": proof} if proof else {})


def _refresh(http, record, secret, refresh_token, proof=None):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    headers = {"DPoP": proof} if proof else {}
    if secret:
        headers.update(basic_auth(record.client_id, secret))
    else:
        data["client_id"] = record.client_id
    return http.post("/token", data=data, headers=headers)


@pytest.fixture
def public_tokens(client, flow, services, make_client, key):
    quick_user(services)
    record, _ = make_client("spa", public=True, first_party=True)
    flow.login()
    code, verifier, _ = flow.code(record, scope="openid offline_access")
    response = _exchange(client, record, code, verifier, key.proof("POST", TOKEN_URL))
    assert response.status_code == 200, response.get_json()
    return record, response.get_json()


def test_rfc9449_5_a_public_clients_refresh_token_is_bound_to_the_key(client, public_tokens, key, services):
    record, tokens = public_tokens
    assert tokens["token_type"] == "DPoP"
    assert unverified(tokens["access_token"])["cnf"] == {"jkt": key.jkt}
    stored = services.store.get_refresh_token(_hash(tokens["refresh_token"]))
    assert stored.dpop_jkt == key.jkt

    response = _refresh(client, record, None, tokens["refresh_token"], key.proof("POST", TOKEN_URL))

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "DPoP"
    assert unverified(body["access_token"])["cnf"] == {"jkt": key.jkt}
    # The successor is bound too.
    assert services.store.get_refresh_token(_hash(body["refresh_token"])).dpop_jkt == key.jkt


@pytest.mark.parametrize("attempt", ["no_proof", "other_key"])
def test_rfc9449_5_a_bound_refresh_token_is_refused_without_its_key_and_stays_usable(
    client, public_tokens, key, attempt
):
    record, tokens = public_tokens
    proof = None if attempt == "no_proof" else DPoPKey("ES256", clock=key.clock).proof("POST", TOKEN_URL)

    assert_refused(_refresh(client, record, None, tokens["refresh_token"], proof), "invalid_grant")

    # Nothing was spent or revoked: the holder of the key still refreshes.
    response = _refresh(client, record, None, tokens["refresh_token"], key.proof("POST", TOKEN_URL))
    assert response.status_code == 200, response.get_json()


def test_rfc9449_5_a_confidential_clients_refresh_token_is_not_key_bound(client, flow, services, make_client, key):
    quick_user(services)
    record, secret = make_client("web", first_party=True)
    flow.login()
    code, verifier, _ = flow.code(record, scope="openid offline_access")
    first = flow.exchange(record, secret, code, verifier)
    assert first.get_json()["token_type"] == "Bearer"

    # Its refresh token is bound to the client's own credentials; a proof binds the new access token.
    response = _refresh(client, record, secret, first.get_json()["refresh_token"], key.proof("POST", TOKEN_URL))
    assert response.get_json()["token_type"] == "DPoP"
    assert services.store.get_refresh_token(_hash(response.get_json()["refresh_token"])).dpop_jkt is None


def _hash(token):
    from authsvc.oauth.issuance import secret_hash

    return secret_hash(token)


# §5.1: discovery.


def test_rfc9449_5_1_discovery_lists_the_proof_algorithms(client):
    doc = client.get("/.well-known/openid-configuration").get_json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "ES384", "EdDSA", "PS256", "RS256"]
    assert "none" not in doc["dpop_signing_alg_values_supported"]
    assert not any(alg.startswith("HS") for alg in doc["dpop_signing_alg_values_supported"])


# §7: the issuer's own protected resource (userinfo) and introspection (§6.2).

USERINFO_URL = ISSUER + "/userinfo"


def _userinfo(http, token, proof=None, scheme="DPoP"):
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return http.get("/userinfo", headers=headers)


def test_rfc9449_7_userinfo_accepts_a_bound_token_with_its_proof(client, public_tokens, key):
    _, tokens = public_tokens
    access = tokens["access_token"]

    response = _userinfo(client, access, key.proof("GET", USERINFO_URL, access_token=access))

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["sub"] == unverified(access)["sub"]


@pytest.mark.parametrize("case", ["as_bearer", "no_proof", "other_key", "no_ath", "other_url", "replayed"])
def test_rfc9449_7_userinfo_refuses_a_bound_token_without_a_good_proof(client, public_tokens, key, case):
    _, tokens = public_tokens
    access = tokens["access_token"]
    good = key.proof("GET", USERINFO_URL, access_token=access)
    if case == "as_bearer":
        response = _userinfo(client, access, scheme="Bearer")
    elif case == "no_proof":
        response = _userinfo(client, access)
    elif case == "other_key":
        response = _userinfo(client, access, DPoPKey(clock=key.clock).proof("GET", USERINFO_URL, access_token=access))
    elif case == "no_ath":
        response = _userinfo(client, access, key.proof("GET", USERINFO_URL))
    elif case == "other_url":
        response = _userinfo(client, access, key.proof("GET", TOKEN_URL, access_token=access))
    else:
        assert _userinfo(client, access, good).status_code == 200
        response = _userinfo(client, access, good)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("DPoP error=")
    assert response.get_json()["error"] in ("invalid_token", "invalid_dpop_proof")


def test_rfc9449_9_userinfo_asks_for_a_nonce_while_nonces_are_required(nonce_client, flow, services, make_client, key):
    quick_user(services)
    record, _ = make_client("spa", public=True, first_party=True)
    nonce_flow = type(flow)(nonce_client)
    nonce_flow.login()
    code, verifier, _ = nonce_flow.code(record, scope="openid")
    nonce = _exchange(nonce_client, record, code, verifier, key.proof("POST", TOKEN_URL)).headers["DPoP-Nonce"]
    access = _exchange(nonce_client, record, code, verifier, key.proof("POST", TOKEN_URL, nonce=nonce)).get_json()[
        "access_token"
    ]

    without = key.proof("GET", USERINFO_URL, access_token=access)
    refused = _userinfo(nonce_client, access, without)

    assert refused.status_code == 401
    assert refused.get_json()["error"] == "use_dpop_nonce"
    assert refused.headers["WWW-Authenticate"].startswith('DPoP error="use_dpop_nonce"')
    fresh = refused.headers["DPoP-Nonce"]
    assert fresh
    forged = _userinfo(nonce_client, access, key.proof("GET", USERINFO_URL, access_token=access, nonce="x" * 24))
    assert forged.get_json()["error"] == "use_dpop_nonce"
    answered = _userinfo(nonce_client, access, key.proof("GET", USERINFO_URL, access_token=access, nonce=fresh))
    assert answered.status_code == 200, answered.get_json()
    assert answered.get_json()["sub"]


def test_rfc9449_9_userinfo_needs_no_nonce_by_default(client, public_tokens, key):
    _, tokens = public_tokens
    access = tokens["access_token"]
    response = _userinfo(client, access, key.proof("GET", USERINFO_URL, access_token=access))
    assert response.status_code == 200 and "DPoP-Nonce" not in response.headers


def test_rfc9449_7_userinfo_refuses_an_unbound_token_in_the_dpop_scheme(client, flow, services, make_client, key):
    quick_user(services)
    record, secret = make_client("web", first_party=True)
    flow.login()
    code, verifier, _ = flow.code(record, scope="openid")
    access = flow.exchange(record, secret, code, verifier).get_json()["access_token"]

    response = _userinfo(client, access, key.proof("GET", USERINFO_URL, access_token=access))

    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert _userinfo(client, access, scheme="Bearer").status_code == 200


def test_rfc9449_6_2_introspection_names_the_bound_key(client, service, key):
    record, secret = service
    access = cc_request(client, service, key.proof("POST", TOKEN_URL)).get_json()["access_token"]

    body = client.post("/introspect", data={"token": access}, headers=basic_auth(record.client_id, secret)).get_json()

    assert body["active"] is True
    assert body["token_type"] == "DPoP"
    assert body["cnf"] == {"jkt": key.jkt}


def test_a_browser_app_may_send_the_dpop_header_and_read_the_nonce(client, services, make_client):
    record, _ = make_client("spa", public=True, first_party=True)
    origin = "https://spa.example"
    services.store.update_client(record.client_id, lambda c: replace(c, allowed_origins=(origin,)))
    preflight = client.options(
        "/token",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "dpop"},
    )
    assert "dpop" in preflight.headers["Access-Control-Allow-Headers"].lower()
    answer = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": record.client_id},
        headers={"Origin": origin},
    )
    assert "DPoP-Nonce" in answer.headers["Access-Control-Expose-Headers"]

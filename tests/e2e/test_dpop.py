"""DPoP end to end (RFC 9449): a real gunicorn issuer, the example resource server, and a
client making its proofs with PyJWT and cryptography exactly as the README shows.

The client is registered ``--dpop-bound``: without a proof it gets no token (§5.2); with
one it gets ``token_type: DPoP`` (§5) and calls the resource server with the DPoP scheme
(§7.1). A replayed proof, a proof for another URL or method, one signed by another key,
and the token sent as Bearer (§7.2) are all refused.
"""

import base64
import hashlib
import json
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from tests.e2e.test_resource_server import ResourceServer


# --- the README's client, verbatim -------------------------------------------------------------
def make_proof(private_key, method, url, access_token=None, nonce=None):
    """A DPoP proof (RFC 9449 §4.2) for one request, signed with the client's own key."""
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key()))
    claims = {"jti": str(uuid.uuid4()), "htm": method, "htu": url, "iat": int(time.time())}
    if access_token:  # at a resource server: the hash of the token it goes with
        digest = hashlib.sha256(access_token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    if nonce:  # when the server asked for one (DPoP-Nonce)
        claims["nonce"] = nonce
    return jwt.encode(claims, private_key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": jwk})


# -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def resource_server(sqlite_issuer, tmp_path_factory):
    server = ResourceServer(sqlite_issuer.instances[0].url, tmp_path_factory.mktemp("dpop-rs"), poll=1.0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bound_client(sqlite_issuer, resource_server):
    return sqlite_issuer.client(
        "--grant-type",
        "client_credentials",
        "--scope",
        "api:read",
        "--audience",
        resource_server.audience,
        "--dpop-bound",
    )


@pytest.fixture(scope="module")
def issuer_url(sqlite_issuer):
    return sqlite_issuer.instances[0].url


def get_token(issuer_url, client, key, **proof_options):
    headers = {"DPoP": make_proof(key, "POST", issuer_url + "/token", **proof_options)} if key else {}
    return requests.post(
        issuer_url + "/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        headers=headers,
        timeout=10,
    )


def test_rfc9449_end_to_end_with_the_example_resource_server(issuer_url, bound_client, resource_server):
    key = ec.generate_private_key(ec.SECP256R1())
    metadata = requests.get(issuer_url + "/.well-known/openid-configuration", timeout=10).json()
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]

    # §5.2: a --dpop-bound client gets nothing without a proof.
    refused = get_token(issuer_url, bound_client, None)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof"

    response = get_token(issuer_url, bound_client, key)
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "DPoP"
    access = token["access_token"]
    hello = resource_server.url + "/hello"

    proof = make_proof(key, "GET", hello, access_token=access)
    ok = requests.get(hello, headers={"Authorization": f"DPoP {access}", "DPoP": proof}, timeout=10)
    assert ok.status_code == 200, ok.text
    assert ok.json()["client_id"] == bound_client["client_id"]

    def refused_at_rs(headers):
        answer = requests.get(hello, headers=headers, timeout=10)
        assert answer.status_code == 401, answer.text
        assert answer.headers["WWW-Authenticate"].startswith("DPoP error=")
        return answer.json()["error"]

    # §11.1 replay, §4.3 another URL and method, §4.3 step 12 another key, §7.2 as Bearer.
    assert refused_at_rs({"Authorization": f"DPoP {access}", "DPoP": proof}) == "invalid_dpop_proof"
    other_url = make_proof(key, "GET", resource_server.url + "/hello/profile", access_token=access)
    assert refused_at_rs({"Authorization": f"DPoP {access}", "DPoP": other_url}) == "invalid_dpop_proof"
    other_method = make_proof(key, "POST", hello, access_token=access)
    assert refused_at_rs({"Authorization": f"DPoP {access}", "DPoP": other_method}) == "invalid_dpop_proof"
    thief = make_proof(ec.generate_private_key(ec.SECP256R1()), "GET", hello, access_token=access)
    assert refused_at_rs({"Authorization": f"DPoP {access}", "DPoP": thief}) == "invalid_dpop_proof"
    assert refused_at_rs({"Authorization": f"Bearer {access}"}) == "invalid_token"


def test_rfc9449_11_1_a_token_request_proof_is_used_once(issuer_url, bound_client):
    key = ec.generate_private_key(ec.SECP256R1())
    proof = make_proof(key, "POST", issuer_url + "/token")
    send = lambda: requests.post(  # noqa: E731
        issuer_url + "/token",
        data={"grant_type": "client_credentials"},
        auth=(bound_client["client_id"], bound_client["client_secret"]),
        headers={"DPoP": proof},
        timeout=10,
    )
    assert send().status_code == 200
    again = send()
    assert again.status_code == 400 and again.json()["error"] == "invalid_dpop_proof"

"""The audience of a user's access tokens (RFC 8707), through the code and refresh grants.

Without ``resource`` a token is for the client's default audience (the first registered),
so a token replays at no other service; ``resource`` picks another registered audience;
a code or refresh token bound to a resource at authorization time stays bound to it. A
client with no audience gets ``aud`` = the issuer, for the issuer's own endpoints only.
"""

from urllib.parse import urlencode

import pytest

from tests.conftest import basic_auth
from tests.conftest import pkce_pair
from tests.conftest import query_of
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401
from tests.oidc import keyring_template  # noqa: F401
from tests.oidc import unverified

pytestmark = pytest.mark.usefixtures("fast_hashing")

ORDERS = "https://orders.example"
BILLING = "https://billing.example"
SCOPE = "openid profile offline_access"


@pytest.fixture
def signed_in(flow, alice):
    assert flow.login().status_code == 303
    return alice


@pytest.fixture
def shop(make_client):
    return make_client("shop", first_party=True, audiences=[ORDERS, BILLING])


def sign_in_tokens(flow, record, secret, *, authorize_resource=None, **exchange) -> dict:
    extra = {"resource": authorize_resource} if authorize_resource else None
    code, verifier, query = flow.code(record, scope=SCOPE, extra=extra)
    assert code, query
    response = flow.exchange(record, secret, code, verifier, **exchange)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def refresh(client, record, secret, refresh_token, **extra):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    return client.post("/token", data=data, headers=basic_auth(record.client_id, secret))


def aud(token: str) -> str:
    return unverified(token)["aud"]


def test_without_resource_every_grant_is_for_the_default_audience(client, flow, signed_in, shop, settings):
    record, secret = shop
    body = sign_in_tokens(flow, record, secret)
    assert aud(body["access_token"]) == ORDERS != settings.issuer

    rotated = refresh(client, record, secret, body["refresh_token"])
    assert rotated.status_code == 200
    assert aud(rotated.get_json()["access_token"]) == ORDERS
    # Still good at the issuer's userinfo endpoint.
    userinfo = client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert userinfo.status_code == 200 and userinfo.get_json()["sub"] == signed_in.sub


def test_resource_at_the_token_endpoint_picks_another_registered_audience(client, flow, signed_in, shop):
    record, secret = shop
    body = sign_in_tokens(flow, record, secret, resource=BILLING)
    assert aud(body["access_token"]) == BILLING
    # The grant itself was not bound to a resource: its refresh token serves the default, or asks.
    assert aud(refresh(client, record, secret, body["refresh_token"]).get_json()["access_token"]) == ORDERS
    again = sign_in_tokens(flow, record, secret)
    for_billing = refresh(client, record, secret, again["refresh_token"], resource=BILLING)
    assert aud(for_billing.get_json()["access_token"]) == BILLING
    refused = refresh(client, record, secret, for_billing.get_json()["refresh_token"], resource="https://evil.example")
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_target"


def test_a_grant_bound_to_a_resource_stays_bound_to_it(client, flow, signed_in, shop):
    record, secret = shop
    body = sign_in_tokens(flow, record, secret, authorize_resource=BILLING)
    assert aud(body["access_token"]) == BILLING
    rotated = refresh(client, record, secret, body["refresh_token"])
    assert aud(rotated.get_json()["access_token"]) == BILLING
    other = refresh(client, record, secret, rotated.get_json()["refresh_token"], resource=ORDERS)
    assert other.status_code == 400 and other.get_json()["error"] == "invalid_target"


def test_a_code_bound_to_a_resource_is_not_exchanged_for_another(flow, signed_in, shop):
    record, secret = shop
    code, verifier, _ = flow.code(record, scope=SCOPE, extra={"resource": BILLING})
    response = flow.exchange(record, secret, code, verifier, resource=ORDERS)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_target"


@pytest.mark.parametrize("resource", ["https://evil.example", ORDERS + "/"])
def test_an_unregistered_resource_is_refused_before_consent(client, signed_in, make_client, resource):
    record, _ = make_client("third party", audiences=[ORDERS, BILLING])
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": record.client_id,
        "redirect_uri": record.redirect_uris[0],
        "scope": "openid",
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "resource": resource,
    }
    response = client.get("/authorize?" + urlencode(params))
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    query = query_of(response.headers["Location"])
    assert query["error"] == "invalid_target" and query["state"] == "st" and "code" not in query


def test_a_client_without_an_audience_gets_the_issuer_for_its_own_endpoints(client, flow, signed_in, make_client):
    record, secret = make_client("plain app", first_party=True)
    body = sign_in_tokens(flow, record, secret)
    assert aud(body["access_token"]) == "http://127.0.0.1:8000"
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]}).status_code == 200

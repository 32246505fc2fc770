"""``python -m authsvc tokens revoke (--jti | --sub | --client)``: the entry lands in GET /revocations."""

import pytest

from tests.conftest import basic_auth


def revocation_list(client) -> dict:
    response = client.get("/revocations")
    assert response.status_code == 200
    return response.json


@pytest.fixture
def service(make_client, client):
    record, secret = make_client("svc", grant_types=("client_credentials",), redirect_uris=(), scope="api:read")
    response = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic_auth(record.client_id, secret)
    )
    assert response.status_code == 200
    return record, secret, response.json["access_token"]


def introspect(client, record, secret, token) -> bool:
    response = client.post("/introspect", data={"token": token}, headers=basic_auth(record.client_id, secret))
    assert response.status_code == 200
    return response.json["active"]


def test_revoke_jti(ok, client, service, services):
    record, secret, token = service
    jti = services.tokens.decode_access_token(token)["jti"]
    assert introspect(client, record, secret, token)
    before = revocation_list(client)["version"]
    entries, _ = ok("tokens", "revoke", "--jti", jti)
    assert [(e["kind"], e["value"]) for e in entries] == [("jti", jti)]
    listed = revocation_list(client)
    assert listed["version"] > before
    assert jti in {e["jti"] for e in listed["jti"]}
    assert not introspect(client, record, secret, token)


def test_revoke_sub(ok, client, store):
    entries, _ = ok("tokens", "revoke", "--sub", "u_someone")
    assert [(e["kind"], e["value"]) for e in entries] == [("sub", "u_someone")]
    (entry,) = [e for e in revocation_list(client)["sub"] if e["sub"] == "u_someone"]
    assert entry["before"] > 0 and entry["exp"] > entry["before"]


def test_revoke_client_kills_what_it_holds(ok, client, service):
    record, secret, token = service
    entries, _ = ok("tokens", "revoke", "--client", record.client_id)
    assert [(e["kind"], e["value"]) for e in entries] == [("client_id", record.client_id)]
    assert record.client_id in {e["client_id"] for e in revocation_list(client)["client_id"]}
    assert not introspect(client, record, secret, token)


@pytest.mark.parametrize("args", [(), ("--jti", "a", "--sub", "b"), ("--client", "")])
def test_revoke_needs_exactly_one_target(fails, store, args):
    assert "exactly one" in fails("tokens", "revoke", *args, "--json")

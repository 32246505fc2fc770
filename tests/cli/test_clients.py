"""``python -m authsvc clients create | list | delete | rotate-secret``, checked against /token."""

import hashlib

import jwt
import pytest

from tests.conftest import basic_auth
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401

CC = {"grant_type": "client_credentials"}


@pytest.fixture
def service_client(ok, store):
    doc, _ = ok(
        "clients", "create", "--name", "billing", "--grant-type", "client_credentials", "--scope", "api:read api:write"
    )
    return doc


def token(client, client_id, secret, **form):
    return client.post("/token", data={**CC, **form}, headers=basic_auth(client_id, secret))


def test_create_confidential_prints_a_working_secret_once(service_client, client, ok):
    assert set(service_client) == {"client_id", "client_secret"}
    secret = service_client["client_secret"]
    # 256 bits of randomness, base64url.
    assert len(secret) >= 43
    response = token(client, service_client["client_id"], secret)
    assert response.status_code == 200, response.json
    claims = jwt.decode(response.json["access_token"], options={"verify_signature": False})
    assert claims["client_id"] == claims["sub"] == service_client["client_id"]
    assert claims["scope"] == "api:read api:write"


def test_create_public_prints_no_secret(ok, store):
    doc, _ = ok("clients", "create", "--name", "spa", "--public", "--redirect-uri", "https://spa.example/cb")
    assert set(doc) == {"client_id"}
    listed = {c["client_id"]: c for c in ok("clients", "list")[0]}
    assert listed[doc["client_id"]]["token_endpoint_auth_method"] == "none"
    assert listed[doc["client_id"]]["grant_types"] == ["authorization_code", "refresh_token"]


def test_list_never_shows_secrets_or_hashes(ok, cli, service_client, store):
    secret = service_client["client_secret"]
    digest = hashlib.sha256(secret.encode()).hexdigest()
    listed, _ = ok("clients", "list")
    assert [c["client_id"] for c in listed] == [service_client["client_id"]]
    entry = listed[0]
    assert entry["name"] == "billing" and entry["scope"] == "api:read api:write"
    assert entry["token_endpoint_auth_method"] == "client_secret_basic"
    code, text, _ = cli("clients", "list")
    assert code == 0
    for out in (str(listed), text):
        assert secret not in out and digest not in out and digest.upper() not in out
    assert not any("secret" in key or "hash" in key for key in entry)


def test_rotate_secret_retires_the_old_one_at_once(ok, service_client, client):
    old = service_client["client_secret"]
    rotated, _ = ok("clients", "rotate-secret", service_client["client_id"])
    assert rotated["client_id"] == service_client["client_id"]
    new = rotated["client_secret"]
    assert new != old
    response = token(client, service_client["client_id"], old)
    assert response.status_code == 401 and response.json["error"] == "invalid_client"
    assert token(client, service_client["client_id"], new).status_code == 200


def test_rotate_secret_errors(ok, fails, store):
    public, _ = ok("clients", "create", "--name", "spa", "--public", "--redirect-uri", "https://spa.example/cb")
    assert "public" in fails("clients", "rotate-secret", public["client_id"], "--json")
    fails("clients", "rotate-secret", "c_nosuchclient", "--json")


def test_delete_stops_the_client_and_lists_its_tokens_revoked(ok, fails, service_client, client):
    client_id = service_client["client_id"]
    assert token(client, client_id, service_client["client_secret"]).status_code == 200
    deleted, _ = ok("clients", "delete", client_id)
    assert deleted == {"client_id": client_id, "deleted": True}
    response = token(client, client_id, service_client["client_secret"])
    assert response.status_code == 401 and response.json["error"] == "invalid_client"
    assert client_id in {e["client_id"] for e in client.get("/revocations").json["client_id"]}
    assert ok("clients", "list")[0] == []
    line = fails("clients", "delete", client_id, "--json")
    assert client_id in line or "not" in line.lower()


def test_delete_unknown_client(fails, store):
    fails("clients", "delete", "c_nosuchclient", "--json")


def test_auth_method_is_enforced(ok, client, store):
    doc, _ = ok(
        "clients",
        "create",
        "--name",
        "poster",
        "--grant-type",
        "client_credentials",
        "--auth-method",
        "client_secret_post",
    )
    client_id, secret = doc["client_id"], doc["client_secret"]
    assert token(client, client_id, secret).status_code == 401
    response = client.post("/token", data={**CC, "client_id": client_id, "client_secret": secret})
    assert response.status_code == 200, response.json


def test_resource_becomes_the_audience(ok, client, store):
    doc, _ = ok(
        "clients",
        "create",
        "--name",
        "api caller",
        "--grant-type",
        "client_credentials",
        "--resource",
        "https://api.example/",
    )
    response = token(client, doc["client_id"], doc["client_secret"], resource="https://api.example/")
    assert response.status_code == 200, response.json
    assert (
        jwt.decode(response.json["access_token"], options={"verify_signature": False})["aud"] == "https://api.example/"
    )
    listed = ok("clients", "list")[0][0]
    assert listed["audiences"] == ["https://api.example/"]


@pytest.mark.parametrize(
    "args",
    [
        ("--redirect-uri", "http://evil.example/cb"),
        ("--redirect-uri", "javascript:alert(1)"),
        ("--redirect-uri", "https://rp.example/cb#frag"),
        ("--grant-type", "password"),
        ("--grant-type", "authorization_code"),
        ("--auth-method", "none"),
        ("--public", "--grant-type", "client_credentials"),
        ("--auth-method", "private_key_jwt"),
        ("--resource", "not a uri"),
        ("--public", "--redirect-uri", "http://localhost:8080/cb"),
        ("--redirect-uri", "https://rp.example/cb", "--allowed-origin", "*"),
        ("--redirect-uri", "https://rp.example/cb", "--allowed-origin", "https://spa.example/"),
        ("--redirect-uri", "https://rp.example/cb", "--allowed-origin", "https://spa.example/app"),
        ("--redirect-uri", "https://rp.example/cb", "--allowed-origin", "http://spa.example"),
        ("--redirect-uri", "https://rp.example/cb", "--allowed-origin", "null"),
        ("--redirect-uri", "https://rp.example/cb", "--allowed-origin", "spa.example"),
        ("--redirect-uri", "https://rp.example/cb", "--id-token-alg", "HS256"),
        ("--redirect-uri", "https://rp.example/cb", "--id-token-alg", "none"),
    ],
)
def test_create_refuses_bad_registrations(fails, ok, store, args):
    fails("clients", "create", "--name", "x", *args, "--json")
    assert ok("clients", "list")[0] == []


def test_create_needs_a_name(fails, store):
    fails("clients", "create", "--json")
    fails("clients", "create", "--name", "", "--json")


def test_commands_before_db_upgrade_say_what_to_do(fails):
    assert "db upgrade" in fails("clients", "list", "--json")


def test_localhost_redirect_uri_is_refused_with_the_ip_literal_to_use(fails, ok, store):
    line = fails("clients", "create", "--name", "cli", "--public", "--redirect-uri", "http://localhost:8080/cb")
    assert "http://127.0.0.1:8080/" in line and "localhost" in line
    doc, _ = ok("clients", "create", "--name", "cli", "--public", "--redirect-uri", "http://127.0.0.1/cb")
    assert ok("clients", "list")[0][0]["redirect_uris"] == ["http://127.0.0.1/cb"]


def test_allowed_origins_are_stored_normalised_and_listed(ok, cli, store):
    doc, _ = ok(
        "clients",
        "create",
        "--name",
        "spa",
        "--public",
        "--redirect-uri",
        "https://spa.example/cb",
        "--allowed-origin",
        "https://SPA.example:443",
        "--allowed-origin",
        "http://127.0.0.1:5173",
        "--allowed-origin",
        "https://spa.example",
    )
    listed = ok("clients", "list")[0][0]
    assert listed["client_id"] == doc["client_id"]
    assert listed["allowed_origins"] == ["https://spa.example", "http://127.0.0.1:5173"]
    code, text, _ = cli("clients", "list")
    assert code == 0 and "allowed_origins=https://spa.example,http://127.0.0.1:5173" in text


def test_id_token_alg_needs_an_active_key_first(ok, fails, store, keyring):  # noqa: F811
    args = ("clients", "create", "--name", "rp", "--redirect-uri", "https://rp.example/cb")
    line = fails(*args, "--id-token-alg", "ES256")
    assert "ES256" in line and "keys rotate --alg ES256" in line
    assert ok("clients", "list")[0] == []

    ok("keys", "rotate", "--alg", "ES256")
    doc, _ = ok(*args, "--id-token-alg", "ES256")
    listed = ok("clients", "list")[0][0]
    assert listed["client_id"] == doc["client_id"] and listed["id_token_signed_response_alg"] == "ES256"
    # A key that is only published (next) signs nothing yet.
    ok("keys", "add", "--alg", "EdDSA")
    assert "keys rotate --alg EdDSA" in fails(*args, "--id-token-alg", "EdDSA")


def test_id_token_alg_on_a_ring_never_started(fails, store):
    line = fails(
        "clients", "create", "--name", "rp", "--redirect-uri", "https://rp.example/cb", "--id-token-alg", "RS256"
    )
    assert "keys rotate --alg RS256" in line

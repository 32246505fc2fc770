"""Discovery, JWKS and the operations endpoints (SECURITY.md B.35, C.42; CONTRACT "HTTP").

Both metadata documents are one document whose issuer and endpoints come from
the configuration alone; the JWKS carries public members only and caches
well; /readyz tells a broken store or key ring apart from a healthy one; and
no path reaches a private key file.
"""

import json
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import basic_auth
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401

WELL_KNOWN = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")
CONTRACT_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "revocation_endpoint",
    "introspection_endpoint",
    "end_session_endpoint",
    "revocation_list_uri",
)
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
SPOOFED = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Prefix": "/evil",
    "Forwarded": "host=evil.example;proto=https",
}


def wait_for(check, timeout=5.0):
    """Poll ``check`` until it returns a truthy value (the ring is re-read at most once a second)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def metadata(client):
    return client.get(WELL_KNOWN[0]).json


def test_both_documents_are_the_same(client, settings):
    first, second = (client.get(path) for path in WELL_KNOWN)
    for response in (first, second):
        assert response.status_code == 200
        assert response.mimetype == "application/json"
        assert "max-age" in response.headers["Cache-Control"]
    assert first.data == second.data
    assert first.json["issuer"] == settings.issuer


def test_the_document_names_what_the_contract_promises(metadata, settings):
    issuer = settings.issuer
    assert metadata["issuer"] == issuer
    for name in CONTRACT_ENDPOINTS:
        assert metadata[name].startswith(issuer + "/"), name
    assert metadata["response_types_supported"] == ["code"]
    assert set(metadata["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
    }
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert "client_secret_basic" in metadata["token_endpoint_auth_methods_supported"]
    assert "client_secret_post" in metadata["token_endpoint_auth_methods_supported"]
    assert "openid" in metadata["scopes_supported"]
    assert metadata["subject_types_supported"] == ["public"]


def test_no_none_algorithm_anywhere(metadata):
    lists = {k: v for k, v in metadata.items() if k.endswith("_alg_values_supported")}
    assert "id_token_signing_alg_values_supported" in lists
    for name, values in lists.items():
        assert values, name
        assert not {v.lower() for v in values} & {"none", "hs256", "hs384", "hs512"}, name


def test_id_token_algs_are_only_those_with_an_active_key(client, keyring):  # noqa: F811
    def advertised():
        return client.get(WELL_KNOWN[0]).json["id_token_signing_alg_values_supported"]

    # The ring holds an RS256 key only: ES256 or EdDSA ID tokens could not be signed.
    assert advertised() == ["RS256"]
    keyring.add("EdDSA")  # published as next, not yet signing
    assert advertised() == ["RS256"]
    keyring.rotate("ES256")
    assert advertised() == ["RS256", "ES256"]
    keyring.rotate("EdDSA")
    assert advertised() == ["RS256", "ES256", "EdDSA"]
    # The same answer under both names.
    assert client.get(WELL_KNOWN[1]).json["id_token_signing_alg_values_supported"] == advertised()


def test_every_listed_endpoint_routes(client, metadata):
    urls = {k: v for k, v in metadata.items() if k.endswith(("_endpoint", "_uri")) and isinstance(v, str)}
    assert set(CONTRACT_ENDPOINTS) <= set(urls)
    for name, url in urls.items():
        path = urlsplit(url).path
        for method in ("GET", "POST"):
            response = client.open(path, method=method)
            assert response.status_code != 404, (name, method, path)
            assert response.status_code < 500, (name, method, path)


def test_jwks_has_public_members_only(client, keyring):  # noqa: F811
    keyring.add("RS256")
    keyring.rotate("ES256")
    keyring.rotate("EdDSA")
    keyring.add("RS256")
    keyring.rotate("RS256")  # and a retired RSA key
    response = client.get("/jwks.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    keys = response.json["keys"]
    published = {key.kid: key for key in keyring.published()}
    assert {k["kid"] for k in keys} == set(published)
    assert len(keys) == len(published)
    for jwk in keys:
        assert not PRIVATE_MEMBERS & set(jwk), jwk["kid"]
        assert jwk["use"] == "sig"
        assert jwk["alg"] == published[jwk["kid"]].alg
        assert jwk["kty"] == {"RS256": "RSA", "ES256": "EC", "EdDSA": "OKP"}[jwk["alg"]]
    assert "PRIVATE" not in response.get_data(as_text=True)


def test_jwks_caching(client, keyring):  # noqa: F811
    first = client.get("/jwks.json")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert f"max-age={keyring.jwks_max_age}" in first.headers["Cache-Control"]
    again = client.get("/jwks.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert client.get("/jwks.json", headers={"If-None-Match": '"stale"'}).status_code == 200
    # A ring change is a new document with a new ETag (an ES256 next key joins the RS256 pair).
    keyring.add("ES256")
    changed = client.get("/jwks.json", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert len(changed.json["keys"]) == len(first.json["keys"]) + 1


def test_health_and_readiness(client):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ready"


def test_readyz_reports_a_corrupted_manifest_while_tokens_keep_flowing(client, settings, make_client, keyring, caplog):  # noqa: F811
    record, secret = make_client("svc", grant_types=("client_credentials",), redirect_uris=())
    manifest = Path(settings.keys_dir) / "manifest.json"
    good = manifest.read_bytes()
    manifest.write_text('{"version": 1, "keys": [')

    assert wait_for(lambda: client.get("/readyz").status_code == 503), "readyz never noticed the broken manifest"
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json == {"status": "unavailable", "failed": ["key ring"]}
    # The detail is for the operator's log, not for whoever probes the endpoint.
    assert "manifest.json" in caplog.text and "manifest.json" not in response.get_data(as_text=True)
    assert response.headers.get("Retry-After")

    # The last good ring keeps signing.
    token = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic_auth(record.client_id, secret)
    )
    assert token.status_code == 200
    assert client.get("/jwks.json").status_code == 200

    manifest.write_bytes(good)
    assert wait_for(lambda: client.get("/readyz").status_code == 200)


def test_readyz_reports_a_missing_database_file(client, settings):
    assert client.get("/readyz").status_code == 200
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    for path in database.parent.glob(database.name + "*"):
        path.unlink()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["failed"] == ["store"]
    assert "Traceback" not in response.get_data(as_text=True)


def test_readyz_reports_a_missing_schema(settings, clock, keyring, tmp_path, caplog):  # noqa: F811
    import sqlite3

    from authsvc.app import create_app
    from authsvc.services import build

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    services = build(settings.with_overrides(database_url=f"sqlite:///{empty}"), clock=clock, keyring=keyring)
    try:
        response = create_app(services=services).test_client().get("/readyz")
    finally:
        services.close()
    assert response.status_code == 503 and response.json["failed"] == ["store"]
    assert "db upgrade" in caplog.text


def test_private_key_files_are_unreachable(client, keyring, settings):  # noqa: F811
    kid = keyring.active("RS256").kid
    keys_dir = Path(settings.keys_dir)
    secrets = [p.read_bytes() for p in keys_dir.iterdir() if p.is_file()]
    paths = [
        f"/keys/{kid}.pem",
        "/keys/manifest.json",
        "/keys/session.key",
        f"/{kid}.pem",
        "/manifest.json",
        "/session.key",
        f"/static/../keys/{kid}.pem",
        f"/static/../../keys/{kid}.pem",
        f"/static/../../../keys/{kid}.pem",
        f"/static/%2e%2e/keys/{kid}.pem",
        f"/static/..%2f..%2f..%2fkeys%2f{kid}.pem",
        f"/static/{keys_dir}/{kid}.pem",
        f"/static//{keys_dir}/{kid}.pem",
        f"/static/{kid}.pem",
        f"/static/x//..//..//..//keys/{kid}.pem",
        f"/static/%2F{str(keys_dir).lstrip('/').replace('/', '%2F')}%2F{kid}.pem",
        f"/jwks.json/{kid}.pem",
        f"/jwks.json/../keys/{kid}.pem",
        f"/.well-known/../keys/{kid}.pem",
        f"/.well-known/{kid}.pem",
        f"/static/..\\..\\..\\keys\\{kid}.pem",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code in (400, 404, 405), (path, response.status_code)
        body = response.data
        assert b"PRIVATE KEY" not in body, path
        assert not any(secret and secret in body for secret in secrets), path


def test_spoofed_host_headers_change_nothing(client, settings, make_client):
    plain = client.get(WELL_KNOWN[0]).data
    for path in WELL_KNOWN:
        spoofed = client.get(path, headers=SPOOFED, base_url="https://evil.example")
        assert spoofed.data == plain
        assert b"evil" not in spoofed.data
    # No redirect is ever built from the client's Host (double slashes, trailing slashes).
    for path in ("/static//authsvc.css", "/jwks.json/", "/.well-known//openid-configuration", "/token/", "/authorize/"):
        response = client.get(path, headers=SPOOFED, base_url="https://evil.example")
        assert "evil" not in response.headers.get("Location", ""), path
        assert response.status_code < 500
    record, secret = make_client("svc", grant_types=("client_credentials",), redirect_uris=())
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={**basic_auth(record.client_id, secret), **SPOOFED},
        base_url="https://evil.example",
    )
    import jwt

    claims = jwt.decode(response.json["access_token"], options={"verify_signature": False})
    assert claims["iss"] == settings.issuer
    assert json.loads(plain)["issuer"] == settings.issuer

"""The authorization code grant with PKCE and OpenID Connect, in-process.

Covers SECURITY.md B.18–B.30 and C.37–C.39: exact redirect URIs, HTML error
pages instead of redirects for unproven clients, PKCE (S256 only, required
for public clients, no downgrade), single-use codes bound to client,
redirect URI and time, reuse revoking what the first exchange issued,
``iss`` and ``state`` in every authorization response, ID token claims, and
the ``prompt`` / ``max_age`` / consent decisions.
"""

import base64
import hashlib
import re
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pytest

from tests import oidc
from tests.conftest import basic_auth
from tests.conftest import pkce_pair
from tests.conftest import query_of
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import half_hash
from tests.oidc import keyring  # noqa: F401
from tests.oidc import keyring_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")

ISSUER = "http://127.0.0.1:8000"
REDIRECT = "https://rp.example/cb"


# -- helpers ---------------------------------------------------------------


def authorize_path(client, **params) -> str:
    query = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uris[0],
        "scope": "openid profile email offline_access",
        "state": "st-1",
    }
    query.update(params)
    return "/authorize?" + urlencode({k: v for k, v in query.items() if v is not None})


def jwks_decode(http, token: str, audience: str, **options) -> dict:
    return oidc.jwks_decode(http, token, audience=audience, issuer=ISSUER, **options)


def assert_html_error_page(response):
    """An HTML error page, never a redirect (CONTRACT: bad client_id or redirect_uri)."""
    assert 400 <= response.status_code < 500, response.status_code
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert b"<h1" in response.data


def assert_error_redirect(response, error: str, state="st-1", redirect=REDIRECT):
    assert response.status_code in (302, 303), (response.status_code, response.get_data(as_text=True)[:300])
    location = response.headers["Location"]
    assert location.split("?", 1)[0] == redirect
    assert "#" not in location
    query = query_of(location)
    assert query["error"] == error, query
    assert query["iss"] == ISSUER
    if state is not None:
        assert query["state"] == state
    assert "code" not in query
    return query


def revocation_list(http) -> dict:
    return http.get("/revocations").get_json()


@pytest.fixture
def web_app(make_client):
    """A confidential client that must ask for consent."""
    return make_client()


@pytest.fixture
def signed_in(flow, alice):
    response = flow.login()
    assert response.status_code == 303
    return alice


# -- the whole flow --------------------------------------------------------


def test_confidential_client_gets_tokens_and_a_verifiable_id_token(client, flow, signed_in, web_app, settings):
    record, secret = web_app
    code, verifier, query = flow.code(record, nonce="n-0S6_WzA2Mj", state="xyz")
    assert query["state"] == "xyz"
    assert query["iss"] == ISSUER

    response = flow.exchange(record, secret, code, verifier)

    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert set(body) >= {"access_token", "id_token", "refresh_token", "expires_in", "scope"}
    header = jwt.get_unverified_header(body["id_token"])
    assert header["alg"] == "RS256"
    assert header.get("typ") != "at+jwt"
    claims = jwks_decode(client, body["id_token"], audience=record.client_id)
    access = jwks_decode(client, body["access_token"], audience=ISSUER)
    assert claims["iss"] == client.get("/.well-known/openid-configuration").get_json()["issuer"]
    assert claims["sub"] == signed_in.sub
    assert claims["aud"] == record.client_id
    assert claims["exp"] - claims["iat"] == settings.id_token_ttl
    assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= claims["iat"]
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["at_hash"] == half_hash(body["access_token"], "RS256")
    assert claims["sid"] and claims["sid"] == access["sid"]
    assert access["sub"] == signed_in.sub and access["client_id"] == record.client_id


def test_public_client_completes_the_flow_with_pkce_and_no_secret(client, flow, signed_in, make_client):
    record, secret = make_client("spa", public=True)
    assert secret is None
    code, verifier, _ = flow.code(record)

    response = flow.exchange(record, None, code, verifier)

    assert response.status_code == 200, response.get_json()
    claims = jwks_decode(client, response.get_json()["id_token"], audience=record.client_id)
    assert claims["sub"] == signed_in.sub


def test_public_client_sending_a_secret_is_refused(flow, signed_in, make_client):
    record, _ = make_client("spa", public=True)
    code, verifier, _ = flow.code(record)

    response = flow.exchange(record, None, code, verifier, client_secret="guess")

    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_id_token_is_signed_with_the_clients_registered_alg(client, flow, signed_in, make_client, keyring, alg):  # noqa: F811 - the fixture
    keyring.rotate(alg)
    record, secret = make_client(id_token_alg=alg)
    code, verifier, _ = flow.code(record)

    body = flow.exchange(record, secret, code, verifier).get_json()

    assert jwt.get_unverified_header(body["id_token"])["alg"] == alg
    claims = jwks_decode(client, body["id_token"], audience=record.client_id)
    assert claims["at_hash"] == half_hash(body["access_token"], alg)
    # The access token keeps the server-wide algorithm.
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "RS256"


def test_a_client_whose_id_token_alg_has_no_key_gets_an_error_redirect_not_a_useless_code(
    client, flow, signed_in, make_client, caplog
):
    # Registered for ES256 while the ring has no active ES256 key (removed after registration).
    record, _ = make_client(id_token_alg="ES256")

    response = client.get(authorize_path(record))

    query = assert_error_redirect(response, "temporarily_unavailable")
    assert "ID tokens" in query["error_description"]
    assert "keys rotate --alg ES256" in caplog.text
    # Without openid there is no ID token to sign: the request goes on to consent.
    assert client.get(authorize_path(record, scope="profile")).status_code == 200


def test_an_id_token_key_lost_before_the_exchange_is_a_503_not_a_500(
    flow,
    signed_in,
    make_client,
    keyring,  # noqa: F811 - the fixture
    monkeypatch,
):
    from authsvc.errors import KeyRingError

    keyring.rotate("ES256")
    record, secret = make_client(id_token_alg="ES256")
    code, verifier, _ = flow.code(record)
    active = keyring.active

    def without_es256(alg):
        if alg == "ES256":
            raise KeyRingError("no active ES256 key in keys; run `python -m authsvc keys rotate --alg ES256`")
        return active(alg)

    monkeypatch.setattr(keyring, "active", without_es256)
    response = flow.exchange(record, secret, code, verifier)

    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"]
    assert "access_token" not in response.json


def test_nonce_is_absent_from_the_id_token_when_not_sent(client, flow, signed_in, web_app):
    record, secret = web_app
    verifier, challenge = pkce_pair()
    response = flow.authorize(
        dict(query_of(authorize_path(record, code_challenge=challenge, code_challenge_method="S256")))
    )
    assert "nonce" not in response.headers["Location"]
    code = query_of(response.headers["Location"])["code"]

    body = flow.exchange(record, secret, code, verifier).get_json()

    assert "nonce" not in jwks_decode(client, body["id_token"], audience=record.client_id)


def test_no_id_token_without_the_openid_scope(flow, signed_in, web_app):
    record, secret = web_app
    code, verifier, _ = flow.code(record, scope="profile offline_access")

    body = flow.exchange(record, secret, code, verifier).get_json()

    assert "id_token" not in body and body["access_token"]


STATES = ["Zürich ☃ 𝄞 &=?#+%20/;", "s" * 2048, "a b\tc"]


@pytest.mark.parametrize("state", STATES, ids=["unicode", "2kB", "whitespace"])
def test_state_is_echoed_byte_exact_on_success_and_error(flow, signed_in, web_app, state):
    record, _ = web_app
    _, _, query = flow.code(record, state=state)
    assert query["state"] == state

    denied = flow.authorize(
        {
            "response_type": "code",
            "client_id": record.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "state": state,
            "prompt": "consent",
        },
        decision="deny",
    )
    assert assert_error_redirect(denied, "access_denied", state=state)["state"] == state


# -- redirect_uri and client_id: never redirect to what is not proven ------

REDIRECT_VARIANTS = [
    "https://rp.example/cb/",
    "HTTPS://rp.example/cb",
    "https://RP.example/cb",
    "https://rp.example/CB",
    "https://rp.example/cb?x=1",
    "https://rp.example/cb#",
    "https://rp.example/cb#x",
    "https://rp.example/cb/../x",
    "https://rp.example/cb;x",
    "https://rp.example/cb/..;/x",
    "https://rp.example/cb%2F",
    "https://rp.example%2Fcb",
    "https://rp.example@evil.example/cb",
    "https://rp.example/cb@evil.example",
    "https://a@rp.example@evil.example/cb",
    "https://rp.example.evil.example/cb",
    "https://rp.example:443/cb",
    "http://rp.example/cb",
    "javascript:alert(1)//https://rp.example/cb",
    "JaVaScRiPt:alert(1)",
    "https://rp.example/c",
    "https://rp.example/cbx",
    "//rp.example/cb",
    "https://rp.example/cb ",
    " https://rp.example/cb",
    "https://rp.example/cb\x00",
]


@pytest.mark.parametrize("signed_in_first", [False, True], ids=["anonymous", "signed-in"])
def test_every_redirect_uri_variant_gives_an_html_page_and_no_location(client, flow, alice, web_app, signed_in_first):
    record, _ = web_app
    if signed_in_first:
        flow.login()
    redirected = []
    for variant in REDIRECT_VARIANTS:
        response = client.get(authorize_path(record, redirect_uri=variant))
        if "Location" in response.headers or response.status_code < 400 or response.mimetype != "text/html":
            redirected.append((variant, response.status_code, response.headers.get("Location")))
    assert redirected == []


def test_loopback_redirect_uri_registration_is_matched_exactly(client, make_client):
    record, _ = make_client("native", public=True, redirect_uris=("http://127.0.0.1:8765/cb",))

    for variant in (
        "http://localhost:8765/cb",
        "http://127.0.0.1:8765/cb/",
        "http://127.0.0.2:8765/cb",
        "http://127.0.0.1:8765/cb?x=1",
        "http://127.0.0.1:51000/other",
        "https://127.0.0.1:51000/cb",
        "http://evil@127.0.0.1:51000/cb",
        "http://127.0.0.1:51000/cb#frag",
        "http://127.0.0.1:abc/cb",
    ):
        assert_html_error_page(client.get(authorize_path(record, redirect_uri=variant)))


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_native_app_on_loopback_may_use_any_port(flow, signed_in, make_client, host):
    # RFC 8252 §7.3: the OS picks the port of a native app's loopback listener.
    record, _ = make_client("native", public=True, redirect_uris=(f"http://{host}/cb",))
    verifier, challenge = pkce_pair()
    redirect = f"http://{host}:51234/cb"
    response = flow.authorize(
        {
            "response_type": "code",
            "client_id": record.client_id,
            "redirect_uri": redirect,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    assert response.status_code == 302, response.get_data(as_text=True)[-600:]
    assert response.headers["Location"].startswith(redirect + "?")
    code = query_of(response.headers["Location"])["code"]
    exchanged = flow.client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": record.client_id,
            "redirect_uri": redirect,
        },
    )
    assert exchanged.status_code == 200, exchanged.get_json()


@pytest.mark.parametrize(
    "client_params",
    [
        {"client_id": "c_unknown"},
        {"client_id": ""},
        {"client_id": None},
        {"client_id": "c_" + "x" * 5000},
        {"client_id": "c_\x00"},
    ],
    ids=["unknown", "empty", "missing", "huge", "nul"],
)
def test_bad_client_id_gives_an_html_page(client, web_app, client_params):
    record, _ = web_app
    response = client.get(authorize_path(record, **client_params))
    assert_html_error_page(response)


def test_duplicated_client_id_gives_an_html_page(client, web_app, make_client):
    record, _ = web_app
    other, _ = make_client("other")
    for pair in ((record.client_id, record.client_id), (record.client_id, other.client_id)):
        path = authorize_path(record) + "&" + urlencode({"client_id": pair[1]})
        response = client.get(path)
        assert_html_error_page(response)


def test_duplicated_redirect_uri_gives_an_html_page(client, web_app):
    record, _ = web_app
    response = client.get(authorize_path(record) + "&" + urlencode({"redirect_uri": "https://evil.example/cb"}))
    assert_html_error_page(response)


def test_missing_redirect_uri_with_several_registered_gives_an_html_page(client, flow, signed_in, make_client):
    record, _ = make_client(redirect_uris=(REDIRECT, "https://rp.example/other"))
    response = client.get(authorize_path(record, redirect_uri=None))
    assert_html_error_page(response)


def test_missing_redirect_uri_with_one_registered_uses_it(flow, signed_in, make_client):
    record, secret = make_client(first_party=True)
    verifier, challenge = pkce_pair()
    response = flow.client.get(
        authorize_path(record, redirect_uri=None, code_challenge=challenge, code_challenge_method="S256")
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith(REDIRECT + "?")
    code = query_of(response.headers["Location"])["code"]
    # Without redirect_uri at /authorize, none is needed at /token either (RFC 6749 §4.1.3).
    exchanged = flow.client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
        headers=basic_auth(record.client_id, secret),
    )
    assert exchanged.status_code == 200, exchanged.get_json()


@pytest.mark.parametrize(
    "response_type", ["token", "id_token", "code id_token", "code token", "id_token token", "none"]
)
def test_other_response_types_are_unsupported(client, flow, signed_in, web_app, response_type):
    record, _ = web_app
    response = client.get(authorize_path(record, response_type=response_type))
    assert_error_redirect(response, "unsupported_response_type")


def test_missing_response_type_is_an_error_redirect(client, web_app):
    record, _ = web_app
    response = client.get(authorize_path(record, response_type=None))
    assert response.status_code == 302
    error = query_of(response.headers["Location"]).get("error")
    assert error in ("invalid_request", "unsupported_response_type")
    assert_error_redirect(response, error)


def test_a_scope_the_client_is_not_registered_for_is_never_granted(flow, signed_in, web_app):
    record, secret = web_app
    code, verifier, _ = flow.code(record, scope="openid admin")

    body = flow.exchange(record, secret, code, verifier).get_json()

    assert body["scope"].split() == ["openid"]
    assert "admin" not in jwt.decode(body["access_token"], options={"verify_signature": False})["scope"]


def test_errors_after_validation_redirect_with_iss_and_state(client, flow, signed_in, make_client):
    record, _ = make_client("spa", public=True)
    response = client.get(authorize_path(record, state="keep-me"))
    assert_error_redirect(response, "invalid_request", state="keep-me")


@pytest.mark.parametrize("param", ["scope", "state", "nonce", "login_hint", "code_challenge"])
def test_oversized_parameters_are_a_fast_html_400(client, flow, signed_in, web_app, param):
    record, _ = web_app
    response = client.get(authorize_path(record, **{param: "openid " * 15_000}))
    assert_html_error_page(response)


@pytest.mark.parametrize("param", ["nonce", "code_challenge", "prompt", "max_age", "response_mode"])
def test_any_repeated_parameter_is_refused(client, flow, signed_in, web_app, param):
    record, _ = web_app
    _, challenge = pkce_pair()
    path = authorize_path(
        record,
        code_challenge=challenge,
        code_challenge_method="S256",
        nonce="n1",
        prompt="consent",
        max_age="600",
        response_mode="query",
    )
    response = client.get(path + "&" + urlencode({param: "other"}))
    assert response.status_code == 400 or "error=invalid_request" in response.headers.get("Location", "")
    assert "code=" not in response.headers.get("Location", "")


def test_repeated_scope_values_are_granted_once(client, flow, signed_in, web_app):
    record, secret = web_app
    page = client.get(authorize_path(record, scope="openid email openid email openid"))
    assert page.get_data(as_text=True).count("See your email address") == 1
    code, verifier, _ = flow.code(record, scope="openid email openid email openid")
    assert flow.exchange(record, secret, code, verifier).get_json()["scope"] == "openid email"


# -- PKCE -----------------------------------------------------------------


def test_public_client_without_code_challenge_gets_an_error_redirect(client, alice, make_client):
    record, _ = make_client("spa", public=True)
    assert_error_redirect(client.get(authorize_path(record)), "invalid_request")


def test_plain_code_challenge_method_is_refused(client, flow, signed_in, web_app):
    record, _ = web_app
    verifier, _ = pkce_pair()
    response = client.get(authorize_path(record, code_challenge=verifier, code_challenge_method="plain"))
    assert_error_redirect(response, "invalid_request")


def test_code_challenge_without_method_is_refused(client, flow, signed_in, web_app):
    """RFC 7636 §4.3 would default to plain, which authsvc does not accept."""
    record, _ = web_app
    _, challenge = pkce_pair()
    response = client.get(authorize_path(record, code_challenge=challenge))
    assert_error_redirect(response, "invalid_request")


def _code_with_challenge(flow, record, challenge):
    params = {
        "response_type": "code",
        "client_id": record.client_id,
        "redirect_uri": record.redirect_uris[0],
        "scope": "openid offline_access",
        "state": "st-1",
    }
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    response = flow.authorize(params)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return query_of(response.headers["Location"])["code"]


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.mark.parametrize("public", [False, True], ids=["confidential", "public"])
@pytest.mark.parametrize(
    "sent",
    ["wrong", "missing", "empty"],
)
def test_wrong_or_missing_code_verifier_is_invalid_grant(flow, signed_in, make_client, public, sent):
    record, secret = make_client(public=public)
    verifier, challenge = pkce_pair()
    code = _code_with_challenge(flow, record, challenge)
    value = {"wrong": pkce_pair()[0], "missing": None, "empty": ""}[sent]

    extra = {} if value is None else {"code_verifier": value}
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    headers = basic_auth(record.client_id, secret) if secret else {}
    if not secret:
        data["client_id"] = record.client_id
    response = flow.client.post("/token", data=data, headers=headers)

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_verifier_without_a_challenge_is_a_downgrade_and_invalid_grant(flow, signed_in, web_app):
    record, secret = web_app
    code = _code_with_challenge(flow, record, None)

    response = flow.exchange(record, secret, code, pkce_pair()[0])

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_confidential_client_without_pkce_still_works(flow, signed_in, web_app):
    record, secret = web_app
    code = _code_with_challenge(flow, record, None)
    response = flow.client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        headers=basic_auth(record.client_id, secret),
    )
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize(
    "verifier",
    ["a" * 42, "a" * 129, "a" * 42 + "+", "a" * 42 + " ", "a" * 42 + "/", "é" * 43, "a" * 42 + "="],
    ids=["42", "129", "plus", "space", "slash", "non-ascii", "padding"],
)
def test_malformed_verifier_matching_its_challenge_is_still_invalid_grant(flow, signed_in, web_app, verifier):
    record, secret = web_app
    code = _code_with_challenge(flow, record, _s256(verifier))

    response = flow.exchange(record, secret, code, verifier)

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("length", [43, 128])
def test_verifier_at_the_length_bounds_is_accepted(flow, signed_in, web_app, length):
    record, secret = web_app
    verifier = ("abcXYZ019-._~" * 20)[:length]
    code = _code_with_challenge(flow, record, _s256(verifier))
    assert flow.exchange(record, secret, code, verifier).status_code == 200


# -- code injection and reuse ----------------------------------------------


def test_code_redeemed_by_another_client_is_invalid_grant(flow, signed_in, web_app, make_client):
    record, _ = web_app
    thief, thief_secret = make_client("thief")
    code, verifier, _ = flow.code(record)

    response = flow.exchange(thief, thief_secret, code, verifier)

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert "access_token" not in response.get_json()


def test_code_with_a_different_redirect_uri_is_invalid_grant(flow, signed_in, make_client):
    record, secret = make_client(redirect_uris=(REDIRECT, "https://rp.example/other"))
    code, verifier, _ = flow.code(record)

    response = flow.exchange(record, secret, code, verifier, redirect_uri="https://rp.example/other")

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_code_without_the_redirect_uri_it_was_issued_for_is_invalid_grant(flow, signed_in, web_app):
    record, secret = web_app
    code, verifier, _ = flow.code(record)
    response = flow.client.post(
        "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
        headers=basic_auth(record.client_id, secret),
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_code_expires_after_60_seconds(flow, signed_in, web_app, clock):
    record, secret = web_app
    code, verifier, _ = flow.code(record)
    clock.advance(61)

    response = flow.exchange(record, secret, code, verifier)

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_code_is_still_good_just_before_60_seconds(flow, signed_in, web_app, clock):
    record, secret = web_app
    code, verifier, _ = flow.code(record)
    clock.advance(59)
    assert flow.exchange(record, secret, code, verifier).status_code == 200


def test_unknown_code_is_invalid_grant(flow, web_app):
    record, secret = web_app
    response = flow.exchange(record, secret, "not-a-code", pkce_pair()[0])
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize("later", [0, 30], ids=["immediately", "after-30s"])
def test_code_reuse_fails_and_revokes_what_the_first_exchange_issued(client, flow, signed_in, web_app, clock, later):
    record, secret = web_app
    code, verifier, _ = flow.code(record)
    first = flow.exchange(record, secret, code, verifier).get_json()
    jti = jwt.decode(first["access_token"], options={"verify_signature": False})["jti"]
    assert jti not in [e["jti"] for e in revocation_list(client)["jti"]]
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + first["access_token"]}).status_code == 200
    clock.advance(later)

    again = flow.exchange(record, secret, code, verifier)

    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_grant"
    assert "id_token" not in again.get_json()
    assert jti in [e["jti"] for e in revocation_list(client)["jti"]]
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + first["access_token"]}).status_code == 401
    refreshed = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=basic_auth(record.client_id, secret),
    )
    assert refreshed.status_code == 400
    assert refreshed.get_json()["error"] == "invalid_grant"


def test_a_replay_racing_the_first_exchange_still_revokes_what_it_issued(
    client, flow, signed_in, web_app, services, monkeypatch
):
    """The replay lands after the code is consumed but before the winner's tokens are
    stored (two instances, same millisecond): what the winner minted must still die."""
    record, secret = web_app
    code, verifier, _ = flow.code(record)
    replays, minted, stored = [], [], []
    real_mint = services.tokens.mint_access_token
    real_create = services.store.create_refresh_token

    def mint_while_replayed(**kwargs):
        if not replays:
            replays.append(flow.exchange(record, secret, code, verifier))
        result = real_mint(**kwargs)
        minted.append(result[1])
        return result

    def create_refresh_token(token):
        stored.append(token)
        return real_create(token)

    monkeypatch.setattr(services.tokens, "mint_access_token", mint_while_replayed)
    monkeypatch.setattr(services.store, "create_refresh_token", create_refresh_token)

    first = flow.exchange(record, secret, code, verifier)

    assert replays and replays[0].status_code == 400
    assert replays[0].get_json()["error"] == "invalid_grant"
    # One success, as for any race; but what it carries is dead.
    assert first.status_code == 200
    tokens = first.get_json()
    assert oidc.unverified(tokens["access_token"])["jti"] == minted[0]["jti"]
    assert minted[0]["jti"] in {e["jti"] for e in revocation_list(client)["jti"]}
    assert stored and services.store.get_refresh_token(stored[0].token_hash).revoked_at is not None
    refreshed = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic_auth(record.client_id, secret),
    )
    assert refreshed.status_code == 400


def test_code_reuse_after_a_refresh_also_revokes_the_newer_tokens(client, flow, signed_in, web_app):
    record, secret = web_app
    code, verifier, _ = flow.code(record)
    first = flow.exchange(record, secret, code, verifier).get_json()
    second = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=basic_auth(record.client_id, secret),
    ).get_json()
    newer_jti = jwt.decode(second["access_token"], options={"verify_signature": False})["jti"]

    assert flow.exchange(record, secret, code, verifier).status_code == 400

    assert newer_jti in [e["jti"] for e in revocation_list(client)["jti"]]
    refreshed = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]},
        headers=basic_auth(record.client_id, secret),
    )
    assert refreshed.get_json()["error"] == "invalid_grant"


def test_token_endpoint_refuses_get(flow, web_app):
    response = flow.client.get("/token?grant_type=authorization_code&code=x")
    assert response.status_code == 405


# -- prompt, max_age, login_hint, response_mode ------------------------------


def test_prompt_none_without_a_session_is_login_required(client, alice, web_app):
    record, _ = web_app
    response = client.get(authorize_path(record, prompt="none", state="pn"))
    assert_error_redirect(response, "login_required", state="pn")


def test_prompt_none_when_consent_is_needed_is_consent_required(client, flow, signed_in, web_app):
    record, _ = web_app
    response = client.get(authorize_path(record, prompt="none", state="pn"))
    assert_error_redirect(response, "consent_required", state="pn")


def test_prompt_none_with_session_and_consent_returns_a_code(flow, signed_in, web_app):
    record, _ = web_app
    flow.code(record)
    _, _, query = flow.code(record, extra={"prompt": "none"})
    assert query["code"]


def test_without_a_session_authorize_sends_the_browser_to_login(client, alice, web_app):
    record, _ = web_app
    response = client.get(authorize_path(record))
    assert response.status_code in (302, 303)
    target = urlsplit(response.headers["Location"])
    assert target.netloc in ("", "127.0.0.1:8000") and target.path == "/login"
    return_to = query_of(response.headers["Location"])["return_to"]
    assert return_to.startswith("/authorize?")


def _auth_time(client, flow, record, secret, **extra):
    code, verifier, _ = flow.code(record, extra=extra)
    body = flow.exchange(record, secret, code, verifier).get_json()
    return jwks_decode(client, body["id_token"], audience=record.client_id, verify_iat=False, verify_exp=False)[
        "auth_time"
    ]


def _relogin_through(client, flow, response):
    """Follow a redirect to /login, sign in there, and follow back to /authorize."""
    assert response.status_code in (302, 303), response.status_code
    assert urlsplit(response.headers["Location"]).path == "/login"
    return_to = query_of(response.headers["Location"])["return_to"]
    logged_in = flow.login(return_to=return_to)
    assert logged_in.status_code == 303
    assert logged_in.headers["Location"] == return_to
    return flow.authorize(dict(query_of(return_to)))


@pytest.mark.parametrize("force", [{"prompt": "login"}, {"max_age": "60"}], ids=["prompt=login", "max_age"])
def test_prompt_login_and_max_age_force_a_new_login(client, flow, signed_in, make_client, clock, force):
    record, secret = make_client(first_party=True)
    first_auth_time = _auth_time(client, flow, record, secret)
    clock.advance(120)
    verifier, challenge = pkce_pair()

    response = client.get(authorize_path(record, code_challenge=challenge, code_challenge_method="S256", **force))
    final = _relogin_through(client, flow, response)

    assert final.status_code == 302
    query = query_of(final.headers["Location"])
    body = flow.exchange(record, secret, query["code"], verifier).get_json()
    claims = jwks_decode(client, body["id_token"], audience=record.client_id, verify_iat=False, verify_exp=False)
    assert claims["auth_time"] == first_auth_time + 120


def test_max_age_within_the_session_age_needs_no_new_login(client, flow, signed_in, make_client, clock):
    record, secret = make_client(first_party=True)
    clock.advance(30)
    _, _, query = flow.code(record, extra={"max_age": "3600"})
    assert query["code"]


def test_login_hint_prefills_the_username(client, alice, web_app):
    record, _ = web_app
    response = client.get(authorize_path(record, login_hint="bob@example.com"))
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert re.search(r'name="username"[^>]*value="bob@example.com"', page)


@pytest.mark.parametrize("mode", ["fragment", "form_post", "web_message"])
def test_response_modes_other_than_query_are_refused(client, flow, signed_in, web_app, mode):
    record, _ = web_app
    response = client.get(authorize_path(record, response_mode=mode))
    assert_error_redirect(response, "invalid_request")


def test_response_mode_query_is_accepted(flow, signed_in, make_client):
    record, _ = make_client(first_party=True)
    _, _, query = flow.code(record, extra={"response_mode": "query"})
    assert query["code"]


@pytest.mark.parametrize("prompt", ["none login", "select_account", "bogus"])
def test_invalid_prompt_values_are_refused(client, flow, signed_in, web_app, prompt):
    record, _ = web_app
    assert_error_redirect(client.get(authorize_path(record, prompt=prompt)), "invalid_request")


def test_no_307_or_308_after_credential_posts(client, flow, alice, web_app):
    record, _ = web_app
    start = client.get(authorize_path(record))
    return_to = query_of(start.headers["Location"])["return_to"]

    login = flow.login(return_to=return_to)
    assert login.status_code == 303

    consent = flow.authorize(dict(query_of(return_to)))
    assert consent.status_code in (302, 303)


@pytest.mark.parametrize("signed_in_first", [False, True], ids=["anonymous", "signed-in"])
def test_the_authorization_request_may_be_posted(client, flow, alice, web_app, signed_in_first):
    """OIDC Core §3.1.2.1: the authorization endpoint MUST support POST."""
    record, secret = web_app
    if signed_in_first:
        flow.login()
    verifier, challenge = pkce_pair()
    params = dict(query_of(authorize_path(record, code_challenge=challenge, code_challenge_method="S256")))

    response = client.post("/authorize", data=params)
    if response.status_code in (302, 303) and urlsplit(response.headers["Location"]).path == "/authorize":
        assert response.status_code == 303
        response = client.get(response.headers["Location"])
    if not signed_in_first:
        assert response.status_code in (302, 303)
        return_to = query_of(response.headers["Location"])["return_to"]
        assert flow.login(return_to=return_to).headers["Location"] == return_to
        response = client.get(return_to)
    assert response.status_code == 200 and b'name="decision"' in response.data
    final = flow.authorize(dict(query_of(response.request.full_path)))

    assert final.status_code == 302
    code = query_of(final.headers["Location"])["code"]
    assert flow.exchange(record, secret, code, verifier).status_code == 200


# -- behind a proxy: Host and X-Forwarded-* change nothing (SECURITY.md B.35) --


@pytest.fixture
def behind_proxy(settings, clock, keyring, store):  # noqa: F811 - the fixture
    """An https issuer reached over plain http, as behind a TLS-terminating proxy."""
    from authsvc.app import create_app
    from authsvc.services import build

    services = build(settings.with_overrides(issuer="https://login.example"), clock=clock, keyring=keyring)
    yield create_app(services=services)
    services.close()


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "login.example"},
        {"Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"},
        {"Host": "login.example", "Forwarded": "host=evil.example;proto=http"},
    ],
    ids=["proxied", "spoofed-x-forwarded", "spoofed-forwarded"],
)
def test_the_flow_works_behind_a_proxy_and_ignores_forwarded_headers(behind_proxy, alice, web_app, headers):
    from tests.conftest import Flow

    record, secret = web_app
    inner = behind_proxy.wsgi_app
    overrides = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    overrides["wsgi.url_scheme"] = "http"
    behind_proxy.wsgi_app = lambda environ, start_response: inner({**environ, **overrides}, start_response)
    client = behind_proxy.test_client()
    http = Flow(client)
    assert http.login().status_code == 303

    code, verifier, query = http.code(record)

    assert query["iss"] == "https://login.example"
    response = http.exchange(record, secret, code, verifier)
    assert response.status_code == 200, response.get_json()
    claims = oidc.unverified(response.get_json()["id_token"])
    assert claims["iss"] == "https://login.example"
    login_redirect = client.get(authorize_path(record, prompt="login"))
    assert "evil" not in login_redirect.headers["Location"]


# -- consent ---------------------------------------------------------------


def test_consent_page_lists_the_scopes_in_words(client, flow, signed_in, web_app):
    record, _ = web_app
    page = client.get(authorize_path(record))
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert record.name in text
    for words in ("Sign you in", "See your username", "See your email address", "Stay signed in"):
        assert words in text
    assert 'name="decision" value="allow"' in text and 'name="decision" value="deny"' in text


def test_denying_consent_redirects_with_access_denied(flow, signed_in, web_app):
    record, _ = web_app
    response = flow.authorize(dict(query_of(authorize_path(record))), decision="deny")
    assert_error_redirect(response, "access_denied")


def test_consent_is_remembered_and_prompt_consent_asks_again(client, flow, signed_in, web_app):
    record, _ = web_app
    flow.code(record)

    again = client.get(authorize_path(record))
    assert again.status_code == 302 and "code" in query_of(again.headers["Location"])

    asked = client.get(authorize_path(record, prompt="consent"))
    assert asked.status_code == 200 and b'name="decision"' in asked.data


def test_consent_covers_only_the_scopes_granted(client, flow, signed_in, web_app):
    record, _ = web_app
    flow.code(record, scope="openid")
    wider = client.get(authorize_path(record, scope="openid email"))
    assert wider.status_code == 200 and b"See your email address" in wider.data


def test_first_party_clients_skip_consent(client, flow, signed_in, make_client):
    record, _ = make_client(first_party=True)
    response = client.get(authorize_path(record))
    assert response.status_code == 302
    assert "code" in query_of(response.headers["Location"])


def test_consent_post_without_a_valid_csrf_token_grants_nothing(client, flow, signed_in, web_app):
    record, _ = web_app
    path = authorize_path(record)
    for data in ({"decision": "allow"}, {"decision": "allow", "csrf_token": "0" * 64}):
        response = client.post(path, data=data)
        assert response.status_code in (400, 403)
        assert "Location" not in response.headers
    # The whole request in the body, decision included, only leads to the consent page.
    posted = client.post("/authorize", data={**query_of(path), "decision": "allow"}, follow_redirects=True)
    assert posted.status_code == 200 and b'name="decision"' in posted.data
    # Nothing was remembered either.
    assert client.get(path).status_code == 200


def test_consent_is_not_given_for_another_client(client, flow, signed_in, web_app, make_client):
    record, _ = web_app
    other, _ = make_client("other")
    flow.code(record)
    assert client.get(authorize_path(other)).status_code == 200


def test_code_of_a_user_disabled_before_the_exchange_is_invalid_grant(flow, signed_in, web_app, services):
    from dataclasses import replace

    record, secret = web_app
    code, verifier, _ = flow.code(record)
    services.store.update_user(signed_in.sub, lambda user: replace(user, disabled=True))

    response = flow.exchange(record, secret, code, verifier)

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_the_session_of_a_disabled_user_is_over(client, flow, signed_in, web_app, services):
    from dataclasses import replace

    record, _ = web_app
    services.store.update_user(signed_in.sub, lambda user: replace(user, disabled=True))
    assert_error_redirect(client.get(authorize_path(record, prompt="none")), "login_required")


def test_prompt_none_with_an_exceeded_max_age_is_login_required(client, flow, signed_in, make_client, clock):
    record, _ = make_client(first_party=True)
    clock.advance(120)
    response = client.get(authorize_path(record, prompt="none", max_age="60"))
    assert_error_redirect(response, "login_required")


# -- across instances --------------------------------------------------------


def test_parallel_redemptions_across_two_instances_give_one_success_then_revoke_it(pg_pair):
    import concurrent.futures

    import requests

    a, b = pg_pair.instances
    user = pg_pair.user("gina")
    registered = pg_pair.client("--redirect-uri", REDIRECT, "--first-party")
    client_id, secret = registered["client_id"], registered["client_secret"]
    code, verifier = oidc.http_code(a.url, client_id, REDIRECT, "openid offline_access", user)

    def redeem(i):
        return requests.post(
            (a, b)[i % 2].url + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=(client_id, secret),
            timeout=30,
        )

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(redeem, range(20)))

    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in responses]
    assert {r.json()["error"] for r in responses if r.status_code != 200} == {"invalid_grant"}
    # Nineteen replays were seen: what the one success issued is revoked too (RFC 9700 §4.5).
    tokens = winners[0].json()
    jti = oidc.unverified(tokens["access_token"])["jti"]
    listed = {e["jti"] for e in requests.get(b.url + "/revocations", timeout=10).json()["jti"]}
    assert jti in listed
    refreshed = requests.post(
        a.url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(client_id, secret),
        timeout=30,
    )
    assert refreshed.status_code == 400

"""DPoP-bound tokens at the resource server (RFC 9449 §4.3, §6.1, §7): ``verify`` with a
proof, the replay cache, and the Flask / WSGI adapters' ``DPoP`` scheme and challenges.
"""

from __future__ import annotations

import json

import flask
import pytest
from werkzeug.test import Client

from authsvc.verify import InvalidClaim
from authsvc.verify import InvalidDPoPProof
from authsvc.verify import InvalidToken
from authsvc.verify import VerifierMiddleware
from authsvc.verify import require_token
from authsvc.verify._dpop import ProofChecker
from tests.dpop_keys import DROP
from tests.dpop_keys import DPoPKey
from tests.dpop_keys import ath

URL = "https://api.example.test/orders"


@pytest.fixture(scope="module")
def key():
    return DPoPKey("ES256")


@pytest.fixture(scope="module")
def other_key():
    return DPoPKey("ES256")


@pytest.fixture
def bound(issuer, key):
    """A token bound to ``key`` (cnf.jkt, §6.1)."""
    return issuer.mint(cnf={"jkt": key.jkt})


def test_rfc9449_7_a_bound_token_with_a_good_proof_is_accepted(verifier, bound, key):
    proof = key.proof("GET", URL, access_token=bound)
    claims = verifier.verify(bound, dpop_proof=proof, method="GET", url=URL)
    assert claims["cnf"] == {"jkt": key.jkt}


@pytest.mark.parametrize("alg", ["EdDSA", "RS256", "PS256"])
def test_rfc9449_4_2_other_proof_algorithms(issuer, verifier, alg):
    key = DPoPKey(alg)
    token = issuer.mint(cnf={"jkt": key.jkt})
    assert verifier.verify(token, dpop_proof=key.proof("GET", URL, access_token=token), method="GET", url=URL)


def test_rfc9449_4_3_query_and_fragment_of_the_url_are_ignored(verifier, bound, key):
    proof = key.proof("GET", URL, access_token=bound)
    assert verifier.verify(bound, dpop_proof=proof, method="GET", url=URL + "?page=2#top")


def test_rfc9449_11_1_a_replayed_proof_is_refused(verifier, bound, key):
    proof = key.proof("GET", URL, access_token=bound)
    verifier.verify(bound, dpop_proof=proof, method="GET", url=URL)
    with pytest.raises(InvalidDPoPProof, match="used already"):
        verifier.verify(bound, dpop_proof=proof, method="GET", url=URL)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", URL),
        ("get", URL),
        ("GET", URL + "/1"),
        ("GET", "https://other.example.test/orders"),
        ("GET", "http://api.example.test/orders"),
    ],
)
def test_rfc9449_4_3_a_proof_for_another_method_or_url_is_refused(verifier, bound, key, method, url):
    proof = key.proof("GET", URL, access_token=bound)
    with pytest.raises(InvalidDPoPProof):
        verifier.verify(bound, dpop_proof=proof, method=method, url=url)


def test_rfc9449_4_3_step_12_a_proof_by_another_key_is_refused(verifier, bound, other_key):
    # A well-formed proof, signed by the key it names, but not the key the token is bound to.
    proof = other_key.proof("GET", URL, access_token=bound)
    with pytest.raises(InvalidDPoPProof, match="another key"):
        verifier.verify(bound, dpop_proof=proof, method="GET", url=URL)


def test_rfc9449_4_3_a_proof_naming_the_bound_key_but_signed_by_another_is_refused(verifier, bound, key, other_key):
    proof = key.proof("GET", URL, access_token=bound, signing_key=other_key.private_key)
    with pytest.raises(InvalidDPoPProof, match="signature"):
        verifier.verify(bound, dpop_proof=proof, method="GET", url=URL)


def test_rfc9449_4_3_ath_missing_or_for_another_token_is_refused(issuer, verifier, bound, key):
    with pytest.raises(InvalidDPoPProof, match="ath"):
        verifier.verify(bound, dpop_proof=key.proof("GET", URL), method="GET", url=URL)
    other = issuer.mint(cnf={"jkt": key.jkt})
    with pytest.raises(InvalidDPoPProof, match="ath"):
        verifier.verify(bound, dpop_proof=key.proof("GET", URL, access_token=other), method="GET", url=URL)


@pytest.mark.parametrize("offset", [-120, 120])
def test_rfc9449_4_3_step_11_a_stale_or_future_proof_is_refused(verifier, bound, key, offset):
    proof = key.proof("GET", URL, access_token=bound, claims={"iat": int(key.clock()) + offset})
    with pytest.raises(InvalidDPoPProof, match="too old"):
        verifier.verify(bound, dpop_proof=proof, method="GET", url=URL)


HOSTILE = {
    "typ_jwt": {"header": {"typ": "JWT"}},
    "alg_hs256": {"alg": "HS256"},
    "alg_none": {"header": {"alg": "none"}},
    "no_jwk": {"header": {"jwk": DROP}},
    "jwk_with_kid_url": {"header": {"jku": "https://evil.example/jwks"}},
    "no_jti": {"claims": {"jti": DROP}},
    "no_htm": {"claims": {"htm": DROP}},
    "no_iat": {"claims": {"iat": DROP}},
    "iat_string": {"claims": {"iat": "now"}},
    "iat_bool": {"claims": {"iat": True}},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_rfc9449_4_3_hostile_proofs_are_invalid_dpop_proof(verifier, bound, key, name):
    options = dict(HOSTILE[name])
    if options.get("alg") == "HS256":
        import jwt

        proof = jwt.encode(
            {"jti": "x", "htm": "GET", "htu": URL, "iat": int(key.clock()), "ath": ath(bound)},
            "k" * 32,
            algorithm="HS256",
            headers={"typ": "dpop+jwt", "jwk": key.public_jwk},
        )
    elif options.get("header", {}).get("alg") == "none":
        proof = key.proof("GET", URL, access_token=bound, header={"alg": "none"}, alg="ES256")
    else:
        proof = key.proof("GET", URL, access_token=bound, **options)
    with pytest.raises(InvalidDPoPProof):
        verifier.verify(bound, dpop_proof=proof, method="GET", url=URL)


@pytest.mark.parametrize(
    "jwk_change",
    [
        lambda k: k.private_jwk,
        lambda k: {"kty": "oct", "k": "c2VjcmV0"},
        lambda k: {**k.public_jwk, "x": "not base64!"},
        lambda k: {**k.public_jwk, "crv": "P-384"},
        lambda k: "a string",
    ],
    ids=["private", "symmetric", "bad_x", "wrong_curve", "not_an_object"],
)
def test_rfc9449_4_3_step_7_bad_jwks_are_invalid_dpop_proof(verifier, bound, key, jwk_change):
    proof = key.proof("GET", URL, access_token=bound, header={"jwk": jwk_change(key)})
    with pytest.raises(InvalidDPoPProof):
        verifier.verify(bound, dpop_proof=proof, method="GET", url=URL)


@pytest.mark.parametrize("proof", ["", "x", "a.b.c", "e30.e30.e30", "é.é.é", "a" * 9000])
def test_malformed_proofs_are_invalid_dpop_proof(verifier, bound, proof):
    with pytest.raises(InvalidDPoPProof):
        verifier.verify(bound, dpop_proof=proof, method="GET", url=URL)


def test_rfc9449_7_2_a_bound_token_without_a_proof_is_refused(verifier, bound):
    with pytest.raises(InvalidToken, match="DPoP-bound"):
        verifier.verify(bound)


def test_rfc9449_7_1_an_unbound_token_with_a_proof_is_refused(issuer, verifier, key):
    token = issuer.mint()
    with pytest.raises(InvalidToken, match="not DPoP-bound"):
        verifier.verify(token, dpop_proof=key.proof("GET", URL, access_token=token), method="GET", url=URL)


@pytest.mark.parametrize("cnf", [{"x5t#S256": "abc"}, "jkt", {"jkt": 5}, {"jkt": ""}])
def test_a_token_bound_in_a_way_the_verifier_cannot_check_is_refused(issuer, verifier, cnf):
    with pytest.raises(InvalidClaim):
        verifier.verify(issuer.mint(cnf=cnf))


def test_bearer_tokens_do_no_proof_work(issuer, verifier, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a Bearer token without cnf must not reach the DPoP checks")

    monkeypatch.setattr(ProofChecker, "check", fail)
    assert verifier.verify(issuer.mint())


def test_the_replay_cache_is_bounded_and_forgets_expired_proofs():
    now = [1000.0]
    checker = ProofChecker(max_age=60, replay_cache_size=3, clock=lambda: now[0])
    cache = checker._seen
    for i in range(10):
        assert cache.add(f"k{i}".encode(), now[0] + 60, now[0])
    assert len(cache._entries) <= 3
    assert not cache.add(b"k9", now[0] + 60, now[0])  # the newest is still remembered
    now[0] += 61
    assert cache.add(b"k9", now[0] + 60, now[0])  # its window is over
    assert len(cache._entries) == 1


def test_verifier_options_are_checked(make_verifier):
    for options in ({"dpop_max_age": 0}, {"dpop_max_age": 10_000}, {"dpop_replay_cache_size": 0}):
        with pytest.raises(ValueError):
            make_verifier(start=False, **options)


# --- require_token and VerifierMiddleware (§7.1) ----------------------------------------------


@pytest.fixture
def app(verifier):
    app = flask.Flask(__name__)

    @app.route("/orders", methods=["GET", "POST"])
    @require_token(verifier, scopes=["read"])
    def orders():
        return {"sub": flask.g.token["sub"]}

    return app


@pytest.fixture
def client(app):
    return app.test_client()


LOCAL = "http://localhost/orders"


def dpop_headers(token, proof):
    return {"Authorization": f"DPoP {token}", "DPoP": proof}


def test_rfc9449_7_1_require_token_accepts_the_dpop_scheme(client, bound, key):
    response = client.get("/orders", headers=dpop_headers(bound, key.proof("GET", LOCAL, access_token=bound)))
    assert response.status_code == 200, response.json


def test_rfc9449_7_1_require_token_still_accepts_bearer_tokens(issuer, client):
    assert client.get("/orders", headers={"Authorization": f"Bearer {issuer.mint()}"}).status_code == 200


def challenge_of(response) -> str:
    return response.headers["WWW-Authenticate"]


def test_rfc9449_7_2_a_bound_token_as_bearer_gets_a_dpop_challenge(client, bound):
    response = client.get("/orders", headers={"Authorization": f"Bearer {bound}"})
    assert response.status_code == 401
    assert challenge_of(response).startswith('DPoP error="invalid_token"')
    assert 'algs="ES256' in challenge_of(response)


@pytest.mark.parametrize(
    "make",
    [
        lambda key, token: {"Authorization": f"DPoP {token}"},
        lambda key, token: dpop_headers(token, key.proof("POST", LOCAL, access_token=token)),
        lambda key, token: dpop_headers(token, key.proof("GET", LOCAL)),
        lambda key, token: dpop_headers(token, "not-a-proof"),
    ],
    ids=["no_proof", "other_method", "no_ath", "garbage"],
)
def test_rfc9449_7_1_a_bad_or_missing_proof_gets_invalid_dpop_proof(client, bound, key, make):
    response = client.get("/orders", headers=make(key, bound))
    assert response.status_code == 401
    assert response.json["error"] == "invalid_dpop_proof"
    assert challenge_of(response).startswith('DPoP error="invalid_dpop_proof", error_description="')
    assert challenge_of(response).endswith('algs="ES256 ES384 EdDSA PS256 RS256"')
    assert bound not in str(response.headers)


def test_rfc9449_7_1_two_dpop_headers_are_refused(client, bound, key):
    headers = [
        ("Authorization", f"DPoP {bound}"),
        ("DPoP", key.proof("GET", LOCAL, access_token=bound)),
        ("DPoP", key.proof("GET", LOCAL, access_token=bound)),
    ]
    response = client.get("/orders", headers=headers)
    assert response.status_code == 401
    assert response.json["error"] == "invalid_dpop_proof"


def test_rfc9449_7_1_token_errors_in_the_dpop_scheme_are_dpop_challenges(issuer, client, key):
    expired = issuer.mint(cnf={"jkt": key.jkt}, iat=1000, exp=2000)
    response = client.get("/orders", headers=dpop_headers(expired, key.proof("GET", LOCAL, access_token=expired)))
    assert response.status_code == 401
    assert challenge_of(response).startswith('DPoP error="invalid_token"')
    narrow = issuer.mint(cnf={"jkt": key.jkt}, scope="write")
    response = client.get("/orders", headers=dpop_headers(narrow, key.proof("GET", LOCAL, access_token=narrow)))
    assert response.status_code == 403
    assert challenge_of(response).startswith('DPoP error="insufficient_scope"')
    assert 'scope="read"' in challenge_of(response)


def test_rfc9449_7_1_no_token_offers_both_schemes(client):
    response = client.get("/orders")
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate") == ["Bearer", 'DPoP algs="ES256 ES384 EdDSA PS256 RS256"']


def test_require_token_with_base_url_checks_the_public_url(verifier, bound, key):
    app = flask.Flask(__name__)

    @app.get("/orders")
    @require_token(verifier, base_url="https://api.example.test")
    def orders():
        return {"ok": True}

    client = app.test_client()
    # Behind a proxy the service sees http://localhost; the client called the public URL.
    ok = client.get("/orders", headers=dpop_headers(bound, key.proof("GET", URL, access_token=bound)))
    assert ok.status_code == 200, ok.json
    local = client.get("/orders", headers=dpop_headers(bound, key.proof("GET", LOCAL, access_token=bound)))
    assert local.status_code == 401


def plain_app(environ, start_response):
    body = json.dumps({"sub": environ["authsvc.token"]["sub"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_rfc9449_7_1_middleware_accepts_dpop_and_refuses_replays(verifier, bound, key):
    wsgi = Client(VerifierMiddleware(plain_app, verifier))
    proof = key.proof("POST", "http://localhost/things/%C3%A9", access_token=bound)
    ok = wsgi.post("/things/é", headers=dpop_headers(bound, proof))
    assert ok.status_code == 200, ok.data
    replay = wsgi.post("/things/é", headers=dpop_headers(bound, proof))
    assert replay.status_code == 401
    assert replay.json["error"] == "invalid_dpop_proof"
    assert replay.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    as_bearer = wsgi.post("/things/é", headers={"Authorization": f"Bearer {bound}"})
    assert as_bearer.status_code == 401
    assert as_bearer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')


def test_middleware_with_base_url(verifier, bound, key):
    wsgi = Client(VerifierMiddleware(plain_app, verifier, base_url="https://api.example.test"))
    ok = wsgi.get("/orders", headers=dpop_headers(bound, key.proof("GET", URL, access_token=bound)))
    assert ok.status_code == 200, ok.data

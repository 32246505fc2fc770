"""The JWKS cache: refetch on unknown kid (rate-limited), keep last good keys, key hygiene."""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from authsvc.verify import UnknownKey
from authsvc.verify import VerifierUnavailable
from authsvc.verify._jwks import parse_jwks

from .conftest import KIDS
from .conftest import eventually


def add_key(issuer, alg: str, kid: str, key) -> None:
    """Publish ``key`` under ``kid`` and let the issuer sign with it."""
    jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(key.public_key()))
    issuer.jwks = [*issuer.jwks, {**jwk, "kid": kid, "alg": alg, "use": "sig"}]
    issuer.private_keys = {**issuer.private_keys, kid: key}


def mint_with(issuer, kid: str, alg: str = "ES256") -> str:
    header = {"alg": alg, "kid": kid, "typ": "at+jwt"}
    return jwt.encode(issuer.claims(), issuer.private_keys[kid], algorithm=alg, headers=header)


def test_jwks_is_fetched_once_and_cached(issuer, verifier):
    for _ in range(20):
        verifier.verify(issuer.mint())
    assert issuer.counts["jwks"] == 1
    assert issuer.counts["discovery"] == 1


def test_a_new_kid_is_picked_up_after_the_refetch_interval(issuer, make_verifier):
    verifier = make_verifier(jwks_refetch_interval=0.2)
    verifier.verify(issuer.mint())
    add_key(issuer, "ES256", "es-2", ec.generate_private_key(ec.SECP256R1()))
    token = mint_with(issuer, "es-2")

    def verifies() -> bool:
        try:
            return bool(verifier.verify(token))
        except UnknownKey:
            return False

    assert eventually(verifies)
    assert issuer.counts["jwks"] == 2


def test_unknown_kids_refetch_at_most_once_per_interval(issuer, make_verifier):
    verifier = make_verifier(jwks_refetch_interval=30)
    verifier.verify(issuer.mint())
    add_key(issuer, "ES256", "es-2", ec.generate_private_key(ec.SECP256R1()))
    token = mint_with(issuer, "es-2")
    for _ in range(50):
        with pytest.raises(UnknownKey):
            verifier.verify(token)
    # The first load started the interval, so the new key waits for it like PyJWKClient's
    # cooldown; that is why "keys add" must publish a key well before "keys rotate".
    assert issuer.counts["jwks"] == 1


def test_by_default_a_key_published_after_the_last_fetch_verifies_within_five_seconds(
    issuer, make_verifier, monkeypatch
):
    """A rotation that promotes a key a verifier has not seen costs it seconds, not half a minute."""
    import time

    from authsvc.verify import _jwks

    verifier = make_verifier()  # the default refetch interval
    verifier.verify(issuer.mint())
    add_key(issuer, "ES256", "es-new", ec.generate_private_key(ec.SECP256R1()))
    token = mint_with(issuer, "es-new")
    with pytest.raises(UnknownKey):
        verifier.verify(token)  # just fetched: the interval has not passed
    later = time.monotonic() + 5.0

    class FiveSecondsLater:
        @staticmethod
        def monotonic():
            return later

    monkeypatch.setattr(_jwks, "time", FiveSecondsLater)
    assert verifier.verify(token)["sub"]
    fetched = issuer.counts["jwks"]
    # A flood of random kids at that moment costs the issuer nothing more.
    signer = issuer.private_keys["es-new"]
    for i in range(200):
        forged = jwt.encode(issuer.claims(), signer, algorithm="ES256", headers={"kid": f"x{i}", "typ": "at+jwt"})
        with pytest.raises(UnknownKey):
            verifier.verify(forged)
    assert issuer.counts["jwks"] == fetched


def test_a_failed_refetch_keeps_the_last_good_keys(issuer, make_verifier):
    verifier = make_verifier(jwks_refetch_interval=0.05)
    good = issuer.mint("EdDSA")
    verifier.verify(good)
    issuer.failing.add("jwks")
    fetched = issuer.counts["jwks"]
    unknown = issuer.sign_raw({"alg": "RS256", "kid": "rs-2", "typ": "at+jwt"}, issuer.claims())
    assert eventually(lambda: _raises(verifier, unknown, UnknownKey) and issuer.counts["jwks"] > fetched)
    assert verifier.verify(good)
    assert verifier.verify(issuer.mint("RS256"))


def test_no_keys_at_all_is_unavailable_not_unknown(issuer, make_verifier):
    issuer.failing.add("jwks")
    with pytest.raises(VerifierUnavailable):
        make_verifier().verify(issuer.mint())


def test_keys_are_refreshed_periodically_so_a_removed_key_stops_working(issuer, make_verifier, monkeypatch):
    monkeypatch.setattr("authsvc.verify._verifier._JWKS_MAX_AGE", 0.1)
    verifier = make_verifier(jwks_refetch_interval=0.05)
    token = issuer.mint("ES256")
    verifier.verify(token)
    issuer.jwks = [jwk for jwk in issuer.jwks if jwk["kid"] != KIDS["ES256"]]
    assert eventually(lambda: _raises(verifier, token, UnknownKey))
    assert verifier.verify(issuer.mint("RS256"))


def _raises(verifier, token, exc_type) -> bool:
    try:
        verifier.verify(token)
    except exc_type:
        return True
    return False


def test_only_usable_public_signing_keys_are_kept(issuer):
    ec_jwk = issuer.public_jwk("ES256")
    rsa_jwk = issuer.public_jwk("RS256")
    weak = json.loads(
        jwt.get_algorithm_by_name("RS256").to_jwk(
            rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
        )
    )
    private = json.loads(jwt.get_algorithm_by_name("ES256").to_jwk(issuer.private_keys["ES256"]))
    p384 = json.loads(jwt.get_algorithm_by_name("ES384").to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key()))
    keys = parse_jwks(
        {
            "keys": [
                rsa_jwk,
                ec_jwk,
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hs", "alg": "HS256"},
                {**weak, "kid": "weak", "alg": "RS256"},
                {**private, "kid": "private", "alg": "ES256"},
                {**p384, "kid": "p384-as-es256", "alg": "ES256"},
                {**ec_jwk, "kid": "ec-as-rs256", "alg": "RS256"},
                {**rsa_jwk, "kid": "no-alg", "alg": None},
                {**rsa_jwk, "kid": "enc", "use": "enc"},
                {**rsa_jwk, "kid": 7},
                {**rsa_jwk, "kid": "ps256", "alg": "PS256"},
                "not a key",
            ]
        }
    )
    assert sorted(keys) == sorted([KIDS["RS256"], KIDS["ES256"]])
    assert keys[KIDS["ES256"]].algorithm_name == "ES256"

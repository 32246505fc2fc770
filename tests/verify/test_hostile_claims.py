"""SECURITY.md A9-A11 and A15: time, issuer, audience, type and claim rules, and scopes.

Tokens here are signed with the issuer's real key: only the claim (or the header's
``typ``) is wrong, so each rejection proves the rule rather than a bad signature.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest

from authsvc.verify import ExpiredToken
from authsvc.verify import InsufficientScope
from authsvc.verify import InvalidAudience
from authsvc.verify import InvalidClaim
from authsvc.verify import InvalidIssuer
from authsvc.verify import InvalidToken
from authsvc.verify import MalformedToken
from authsvc.verify import TokenVerifier

from .conftest import AUDIENCE
from .conftest import DROP
from .conftest import KIDS
from .conftest import jws_header as header


def test_expiry(issuer, verifier):
    now = int(time.time())
    with pytest.raises(ExpiredToken):
        verifier.verify(issuer.mint(iat=now - 900, exp=now - 300))
    with pytest.raises(InvalidClaim):
        verifier.verify(issuer.mint(exp=DROP))


def test_not_yet_valid(issuer, verifier):
    now = int(time.time())
    with pytest.raises(InvalidClaim):
        verifier.verify(issuer.mint(nbf=now + 300))
    with pytest.raises(InvalidClaim):
        verifier.verify(issuer.mint(iat=now + 300, exp=now + 900))


@pytest.mark.parametrize(
    "raw_exp",
    [b'"9999999999"', b"true", b"-1", b"1e309", b"-1e309", b"NaN", b"Infinity", b"[9999999999]", b"null", b"{}"],
)
def test_exp_of_the_wrong_type_is_rejected(issuer, verifier, raw_exp):
    claims = json.dumps(issuer.claims(exp=DROP)).encode()
    payload = claims[:-1] + b', "exp": ' + raw_exp + b"}"
    with pytest.raises(InvalidToken):
        verifier.verify(issuer.sign_raw(header(), payload))


def test_fractional_numeric_dates_are_accepted(issuer, verifier):
    now = time.time()
    verifier.verify(issuer.mint(iat=now, exp=now + 600.5))


@pytest.mark.parametrize(
    "iss",
    ["{issuer}.evil", "{issuer}/", "http", "{issuer_upper}", "", ["{issuer}"], None, DROP, " {issuer}"],
)
def test_issuer_must_match_exactly(issuer, verifier, iss):
    if isinstance(iss, str):
        iss = iss.format(issuer=issuer.issuer, issuer_upper=issuer.issuer.upper())
    elif isinstance(iss, list):
        iss = [issuer.issuer]
    with pytest.raises(InvalidIssuer):
        verifier.verify(issuer.mint(iss=iss))


@pytest.mark.parametrize(
    "aud",
    [
        DROP,
        "",
        [],
        ["https://other.test"],
        "https://other.test",
        AUDIENCE + "/",
        AUDIENCE[:-1],
        42,
        [AUDIENCE, 42],
        None,
    ],
)
def test_audience_must_name_us(issuer, verifier, aud):
    with pytest.raises(InvalidAudience):
        verifier.verify(issuer.mint(aud=aud))


def test_audience_list_containing_us_is_accepted(issuer, verifier):
    verifier.verify(issuer.mint(aud=["https://other.test", AUDIENCE]))


@pytest.mark.parametrize("typ", ["JWT", DROP, None, "jwt", "id+jwt", "at+jwt; x=1", "application/jwt", "", 1])
def test_only_access_token_types_are_accepted(issuer, verifier, typ):
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.mint(headers={"typ": typ}))


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+Jwt"])
def test_access_token_types_compare_case_insensitively(issuer, verifier, typ):
    verifier.verify(issuer.mint(headers={"typ": typ}))


def test_id_token_presented_as_access_token(issuer, verifier):
    id_token = jwt.encode(
        {**issuer.claims(), "aud": AUDIENCE, "nonce": "n"},
        issuer.private_keys["RS256"],
        algorithm="RS256",
        headers={"kid": KIDS["RS256"]},  # PyJWT's default typ "JWT", as an ID token has
    )
    with pytest.raises(MalformedToken):
        verifier.verify(id_token)


@pytest.mark.parametrize(
    "overrides",
    [
        {"jti": DROP},
        {"client_id": DROP},
        {"iat": DROP},
        {"sub": DROP},
        {"scope": DROP},
        {"sub": 123},
        {"jti": ""},
        {"jti": 7},
        {"client_id": ["c"]},
        {"scope": ["read", "write"]},
        {"scope": None},
        {"sid": 5},
        {"iat": "now"},
    ],
)
def test_rfc9068_claim_types(issuer, verifier, overrides):
    with pytest.raises(InvalidClaim):
        verifier.verify(issuer.mint(**overrides))


def test_required_scopes_are_enforced(issuer, verifier):
    token = issuer.mint(scope="read write")
    assert verifier.verify(token, scopes=["read"])
    assert verifier.verify(token, scopes="read write")
    with pytest.raises(InsufficientScope) as info:
        verifier.verify(token, scopes=["read", "admin"])
    assert info.value.scopes == ("read", "admin")
    assert info.value.status_code == 403 and info.value.error == "insufficient_scope"
    # "re" is a substring of "read" but not a granted scope.
    with pytest.raises(InsufficientScope):
        verifier.verify(token, scopes="re")
    with pytest.raises(InsufficientScope):
        verifier.verify(issuer.mint(scope=""), scopes="read")


@pytest.mark.parametrize("skew", [-30, 30])
def test_clock_skew_within_leeway_is_accepted(issuer, verifier, skew):
    # The issuer's clock runs ``skew`` seconds off ours; it stamps iat/nbf/exp with it.
    # Behind by 30 s: a token stamped to expire "now" on its clock is still inside the leeway.
    now = int(time.time()) + skew
    exp = now + 600 if skew > 0 else now + 1
    verifier.verify(issuer.mint(iat=now, nbf=now, exp=exp))


@pytest.mark.parametrize("skew", [-300, 300])
def test_clock_skew_of_minutes_is_rejected(issuer, verifier, skew):
    now = int(time.time()) + skew
    exp = now + 600 if skew > 0 else now + 1
    with pytest.raises((InvalidClaim, ExpiredToken)):
        verifier.verify(issuer.mint(iat=now, nbf=now, exp=exp))


@pytest.mark.parametrize("leeway", [-1, 61, 300])
def test_leeway_is_bounded(issuer, leeway):
    with pytest.raises(ValueError):
        TokenVerifier(issuer.issuer, AUDIENCE, leeway=leeway, start=False)

"""SECURITY.md A7 and A12-A14: what a token looks like before any crypto runs.

Length, charset, segment count, canonical base64url, UTF-8 JSON without duplicate
members: all refused early and cheaply. Two property tests then throw random mutations
and random garbage at the verifier: the only thing that may come back is InvalidToken.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from authsvc.verify import InvalidToken
from authsvc.verify import MalformedToken

from .conftest import DROP
from .conftest import b64
from .conftest import jws_header as header


def test_non_canonical_base64url_is_rejected(issuer, verifier):
    token = issuer.mint()
    head, payload, sig = token.split(".")
    padded = [f"{head}==.{payload}.{sig}", f"{head}.{payload}=.{sig}", f"{head}.{payload}.{sig}="]
    # A last character whose unused low bits are set decodes to the same bytes.
    last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    bits = len(sig) * 6 % 8
    if bits:
        tweaked = last[last.index(sig[-1]) | ((1 << bits) - 1)]
        padded.append(f"{head}.{payload}.{sig[:-1]}{tweaked}")
    for bad in padded:
        with pytest.raises(MalformedToken):
            verifier.verify(bad)
    with pytest.raises(MalformedToken):
        verifier.verify(f"{token}.{sig}")  # four segments
    with pytest.raises(MalformedToken):
        verifier.verify(f"{head}.{payload}.{sig}.")


def test_other_serializations_are_rejected_before_crypto(issuer, verifier):
    token = issuer.mint()
    head, payload, sig = token.split(".")
    for bad in (
        f"{head}.{b64(b'key')}.{b64(b'iv')}.{payload}.{sig}",  # JWE compact, 5 segments
        json.dumps({"payload": payload, "protected": head, "signature": sig}),
        json.dumps({"payload": payload, "signatures": [{"protected": head, "signature": sig}]}),
        f'{head}.{payload}.{sig}{{"payload":"x"}}',
        f" {token}",
        f"{token}\n",
        f"{head}. {payload}.{sig}",
        f'"{token}"',
        token.replace("-", "+"),
        "",
        "..",
    ):
        with pytest.raises(MalformedToken):
            verifier.verify(bad)
    for not_a_string in (None, 42, ["a.b.c"], b"\xff.\xff.\xff"):
        with pytest.raises(MalformedToken):
            verifier.verify(not_a_string)


@pytest.mark.parametrize("size", [8193, 64 * 1024, 100 * 1024, 1024 * 1024])
def test_oversized_tokens_are_rejected_fast(issuer, verifier, size):
    token = issuer.mint()
    head, _, sig = token.split(".")
    big = f"{head}.{'A' * size}.{sig}"
    started = time.perf_counter()
    with pytest.raises(MalformedToken):
        verifier.verify(big)
    assert time.perf_counter() - started < 0.05


def test_max_token_bytes_is_configurable(issuer, make_verifier):
    token = issuer.mint()
    with pytest.raises(MalformedToken):
        make_verifier(max_token_bytes=len(token) - 1).verify(token)
    assert make_verifier(max_token_bytes=len(token)).verify(token)


def test_deeply_nested_json_is_rejected(issuer, verifier):
    nested = b'{"alg":"RS256","kid":"rs-1","typ":"at+jwt","x":' + b"[" * 2500 + b"]" * 2500 + b"}"
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.sign_raw(nested, issuer.claims()))


def test_duplicate_members_are_rejected_even_when_signed(issuer, verifier):
    claims = issuer.claims(sub="alice")
    payload = json.dumps(claims).encode()[:-1] + b', "sub": "admin"}'
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.sign_raw(header(), payload))
    head = b'{"alg":"HS256","kid":"rs-1","typ":"at+jwt","alg":"RS256"}'
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.sign_raw(head, claims))


@pytest.mark.parametrize(
    "payload",
    [
        "UTF16",
        b"\xef\xbb\xbf{}",
        b'{"sub": "\xff"}',
        b'{"sub": "\\ud800"}',
        b'{"sub": "\xed\xa0\x80"}',  # a surrogate encoded as if UTF-8 (CESU-8)
    ],
)
def test_only_utf8_json_is_accepted(issuer, verifier, payload):
    if payload == "UTF16":
        payload = json.dumps(issuer.claims()).encode("utf-16")
    elif payload.endswith(b"}") and payload != b"\xef\xbb\xbf{}":
        claims = json.dumps(issuer.claims(sub=DROP)).encode()
        payload = claims[:-1] + b", " + payload[1:]
    with pytest.raises(MalformedToken):
        verifier.verify(issuer.sign_raw(header(), payload))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_tokens_only_ever_raise_invalid_token(issuer, verifier, data):
    token = issuer.mint()
    position = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.text(max_size=3))
    mutated = token[:position] + replacement + token[position + 1 :]
    if mutated == token:
        return
    with pytest.raises(InvalidToken):
        verifier.verify(mutated)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_garbage_only_ever_raises_malformed_token(verifier, garbage):
    with pytest.raises(MalformedToken):
        verifier.verify(garbage)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)
HEADER_NAMES = st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jku", "cty", "x5t"])
CLAIM_NAMES = st.sampled_from(["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "sid"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header_changes=st.dictionaries(HEADER_NAMES, JSON_VALUES, max_size=2),
    claim_changes=st.dictionaries(CLAIM_NAMES, JSON_VALUES, max_size=3),
)
def test_signed_tokens_with_odd_members_only_ever_raise_invalid_token(issuer, verifier, header_changes, claim_changes):
    token = issuer.sign_raw({**header(), **header_changes}, issuer.claims(**claim_changes))
    try:
        verifier.verify(token)
    except InvalidToken:
        pass

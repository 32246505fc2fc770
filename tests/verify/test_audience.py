"""A verifier accepts only tokens for its own audience, and warns when that audience is the issuer.

A token whose ``aud`` is the issuer was issued to a client with no audience of its own and is
meant for the issuer's endpoints only; a service verifying with ``audience=issuer`` would accept
every such token of every client.
"""

import logging

import pytest

from authsvc.verify import InvalidAudience
from tests.verify.conftest import AUDIENCE

OTHER = "https://other.example.test"


def audience_warnings(caplog) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "authsvc.verify" and r.levelno == logging.WARNING and "audience" in r.msg
    ]


def test_a_verifier_for_the_issuers_own_audience_warns_once(issuer, make_verifier, caplog):
    caplog.set_level(logging.WARNING, logger="authsvc.verify")
    verifier = make_verifier(audience=issuer.issuer)

    warnings = audience_warnings(caplog)
    assert len(warnings) == 1
    assert issuer.issuer in warnings[0].getMessage()
    assert "--audience" in warnings[0].getMessage()
    # Once, at construction: verifying tokens does not repeat it.
    for _ in range(3):
        assert verifier.verify(issuer.mint(aud=issuer.issuer))["aud"] == issuer.issuer
    assert len(audience_warnings(caplog)) == 1


def test_the_issuer_with_a_trailing_slash_still_warns(issuer, make_verifier, caplog):
    caplog.set_level(logging.WARNING, logger="authsvc.verify")
    make_verifier(audience=issuer.issuer + "/", start=False)
    assert len(audience_warnings(caplog)) == 1


def test_a_verifier_for_its_own_audience_does_not_warn(issuer, make_verifier, caplog):
    caplog.set_level(logging.WARNING, logger="authsvc.verify")
    make_verifier(audience=AUDIENCE, start=False)
    assert audience_warnings(caplog) == []


def test_two_services_each_reject_the_others_token(issuer, make_verifier):
    service_a, service_b = make_verifier(audience=AUDIENCE), make_verifier(audience=OTHER)
    for_a, for_b = issuer.mint(aud=AUDIENCE, scope="api:admin"), issuer.mint(aud=OTHER, scope="api:admin")

    assert service_a.verify(for_a, scopes=["api:admin"])["aud"] == AUDIENCE
    assert service_b.verify(for_b, scopes=["api:admin"])["aud"] == OTHER
    with pytest.raises(InvalidAudience):
        service_b.verify(for_a, scopes=["api:admin"])
    with pytest.raises(InvalidAudience):
        service_a.verify(for_b)
    # Neither accepts a token meant for the issuer's own endpoints.
    for service in (service_a, service_b):
        with pytest.raises(InvalidAudience):
            service.verify(issuer.mint(aud=issuer.issuer))

"""Flows that hop hosts, partitions from Redis and from the issuer, and key rotation while all hosts serve.

Requests are pinned to one host at a time by putting the others in maintenance
at the balancer, so each step of a flow provably runs on the host it names.
The verifier runs in a fourth namespace and reaches the issuer only through
the lab's network.
"""

import secrets
import time
from urllib.parse import urlencode

import pytest
import requests

from tests import oidc
from tests.cluster import lab
from tests.cluster.conftest import VERIFIER_AUDIENCE
from tests.cluster.conftest import Verifier
from tests.conftest import pkce_pair
from tests.servers import cli_json
from tests.servers import run_cli

pytestmark = pytest.mark.cluster

REDIRECT = "https://app.cluster.test/callback"
AFTER_LOGOUT = "https://app.cluster.test/bye"


@pytest.fixture(scope="module")
def web_app(fleet):
    password = secrets.token_urlsafe(12)
    username = "u" + secrets.token_hex(4)
    user = cli_json(fleet.root_env, "users", "create", "--username", username, "--password-stdin", stdin=password)
    client = cli_json(
        fleet.root_env, "clients", "create", "--name", "cluster web", "--redirect-uri", REDIRECT,
        "--post-logout-redirect-uri", AFTER_LOGOUT, "--audience", VERIFIER_AUDIENCE,
    )  # fmt: skip
    return {"user": dict(user, username=username, password=password), "client": client}


@pytest.fixture(scope="module")
def verifier_with_redis(fleet):
    verifier = Verifier(fleet.issuer, fleet.lab_redis, fleet.tmp, poll=30.0, staleness=120.0)
    yield verifier
    verifier.stop()


@pytest.fixture(scope="module")
def verifier_polling(fleet):
    verifier = Verifier(fleet.issuer, None, fleet.tmp, poll=1.0, staleness=4.0)
    yield verifier
    verifier.stop()


def sign_in(fleet, app, login_host, code_host, token_host):
    user, client = app["user"], app["client"]
    browser = requests.Session()
    with fleet.only(login_host):
        signed_in = oidc.http_login(browser, fleet.issuer, user["username"], user["password"])
        assert signed_in.status_code == 303, signed_in.text[:300]
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code", "client_id": client["client_id"], "redirect_uri": REDIRECT,
        "scope": "openid offline_access", "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    with fleet.only(code_host):
        final = oidc.http_walk(browser, fleet.issuer, fleet.issuer + "/authorize?" + urlencode(params))
        assert final.status_code in (302, 303), final.text[:300]
        code = oidc.location_query(final)["code"]
    with fleet.only(token_host):
        tokens = requests.post(
            fleet.issuer + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=(client["client_id"], client["client_secret"]),
            timeout=10,
        )
        assert tokens.status_code == 200, tokens.text
    return browser, tokens.json()


def refresh(fleet, app, host, refresh_token):
    client = app["client"]
    with fleet.only(host):
        response = requests.post(
            fleet.issuer + "/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client["client_id"], client["client_secret"]),
            timeout=10,
        )
    return response


def logout(fleet, host, browser, id_token):
    with fleet.only(host):
        bye = browser.get(
            fleet.issuer + "/logout",
            params={"id_token_hint": id_token, "post_logout_redirect_uri": AFTER_LOGOUT},
            allow_redirects=False,
            timeout=10,
        )
    assert bye.status_code in (302, 303), bye.text[:300]
    return time.monotonic()


def seconds_until_refused(verifier, token, limit: float) -> float:
    started = time.monotonic()
    lab.wait_until(lambda: verifier.verify(token).get("error") == "RevokedToken", limit, "the verifier to refuse")
    return time.monotonic() - started


def test_login_code_refresh_and_logout_on_different_hosts_reach_a_verifier_within_a_second(
    healthy, web_app, verifier_with_redis, verifier_polling
):
    fleet = healthy
    browser, tokens = sign_in(fleet, web_app, login_host="h1", code_host="h2", token_host="h3")
    refreshed = refresh(fleet, web_app, "h1", tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    access = refreshed.json()["access_token"]
    assert verifier_with_redis.verify(access)["ok"] is True
    assert verifier_polling.verify(access)["ok"] is True

    logout(fleet, "h2", browser, refreshed.json()["id_token"])
    with_redis = seconds_until_refused(verifier_with_redis, access, 5.0)
    polling = seconds_until_refused(verifier_polling, access, 5.0)
    assert with_redis <= 1.0
    assert polling <= 1.0 + 0.5
    # The session's refresh token died with it, whichever host is asked.
    assert refresh(fleet, web_app, "h3", refreshed.json()["refresh_token"]).status_code == 400


def test_a_host_cut_off_from_redis_still_signs_in_and_revokes(healthy, web_app, verifier_polling):
    fleet = healthy
    lab.partition("h3", "redis")
    browser, tokens = sign_in(fleet, web_app, login_host="h3", code_host="h3", token_host="h3")
    access = tokens["access_token"]
    assert verifier_polling.verify(access)["ok"] is True
    with fleet.only("h3"):
        revoked = requests.post(
            fleet.issuer + "/revoke",
            data={"token": access},
            auth=(web_app["client"]["client_id"], web_app["client"]["client_secret"]),
            timeout=15,
        )
    assert revoked.status_code == 200, revoked.text
    assert seconds_until_refused(verifier_polling, access, 5.0) <= 1.5


def test_a_verifier_cut_off_from_the_issuer_fails_closed_and_recovers(healthy, verifier_polling):
    fleet = healthy
    token = fleet.token().json()["access_token"]
    assert verifier_polling.verify(token)["ok"] is True
    lab.partition("v1", "issuer")
    cut = time.monotonic()
    # Staleness bound 4 s: after it, verification fails closed.
    lab.wait_until(
        lambda: verifier_polling.verify(token).get("error") == "VerifierUnavailable",
        15.0,
        "the verifier to fail closed",
    )
    assert time.monotonic() - cut >= 3.0
    lab.heal("v1", "issuer")
    lab.wait_until(lambda: verifier_polling.verify(token).get("ok") is True, 15.0, "the verifier to recover")


def test_key_rotation_through_the_cli_while_every_host_serves_fails_no_verification(healthy, verifier_with_redis):
    fleet = healthy
    failures, checked = [], 0
    rotated = run_cli(fleet.root_env, "keys", "rotate", "--force")
    assert rotated.returncode == 0, rotated.stderr
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline and checked < 400:
        token = fleet.token().json()["access_token"]
        answer = verifier_with_redis.verify(token)
        checked += 1
        if not answer["ok"]:
            failures.append(answer["error"])
    assert checked > 20
    assert failures == []

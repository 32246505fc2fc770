"""Each security-relevant action writes its own log record with a stable ``event`` name, and none of
them carries a password, a client secret or a whole token.

Operators alert on these names (README, "What to alert on"); a renamed or lost event is a silent
hole in their monitoring, so each one is asserted by performing the action, as a user or an
operator would.
"""

import json
import logging

import pytest

from tests.oauth_calls import PASSWORD
from tests.oauth_calls import quick_user
from tests.oauth_calls import refresh
from tests.oauth_calls import revoke
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401


@pytest.fixture
def settings(settings):
    """Three wrong passwords lock a username (the default is ten)."""
    return settings.with_overrides(login_attempts_per_user=3)


@pytest.fixture(autouse=True)
def _info_level(caplog):
    caplog.set_level(logging.INFO, logger="authsvc")


def recorded(caplog, event: str, *never: str) -> list[logging.LogRecord]:
    """The records of ``event``; none of them holds any of ``never``, in its text or in a field."""
    found = [record for record in caplog.records if getattr(record, "event", None) == event]
    assert found, f"no {event} record among {[getattr(r, 'event', r.getMessage()) for r in caplog.records]}"
    for record in found:
        assert record.name == "authsvc.security"
        shown = record.getMessage() + json.dumps(vars(record), default=str)
        for value in never:
            assert value and value not in shown, f"{event} carries {value[:12]}…"
    return found


def test_login_succeeded_names_the_user_not_the_password(client, flow, services, caplog):
    user = quick_user(services)
    assert flow.login(password=PASSWORD).status_code in (302, 303)
    [record] = recorded(caplog, "login.succeeded", PASSWORD)
    assert record.sub == user.sub and record.address == "127.0.0.1"


def test_login_failed_carries_neither_password_nor_username(client, flow, services, caplog):
    quick_user(services)
    assert flow.login(password="Tr0ub4dor&3 typed wrong").status_code == 401
    [record] = recorded(caplog, "login.failed", "Tr0ub4dor&3 typed wrong", "alice")
    assert record.username_hash


def test_login_locked(client, flow, services, caplog):
    quick_user(services)
    for attempt in range(4):
        flow.login(password=f"wrong password {attempt}")
    [record] = recorded(caplog, "login.locked", "wrong password 3", "alice")
    assert record.levelno == logging.WARNING and record.username_hash


def test_consent_granted(client, flow, rp, services, caplog):
    rp_client, _ = rp
    flow.login(password=PASSWORD)
    code, _, _ = flow.code(rp_client, scope="openid profile")
    assert code
    [record] = recorded(caplog, "consent.granted", code)
    assert record.client_id == rp_client.client_id and record.scope == "openid profile"


def test_refresh_reuse_detected_and_family_revoked(client, rp, tokens, clock, settings, caplog):
    rp_client, secret = rp
    spent = tokens["refresh_token"]
    assert refresh(client, rp_client, secret, spent).status_code == 200
    clock.advance(settings.refresh_grace + 1)  # past the grace, a replay is theft

    assert refresh(client, rp_client, secret, spent).status_code == 400

    [reuse] = recorded(caplog, "refresh.reuse_detected", spent, secret)
    [family] = recorded(caplog, "refresh.family_revoked", spent, secret)
    assert reuse.levelno == family.levelno == logging.WARNING
    assert reuse.family_id == family.family_id and family.client_id == rp_client.client_id


def test_code_reuse_detected(client, flow, rp, caplog):
    rp_client, secret = rp
    flow.login(password=PASSWORD)
    code, verifier, _ = flow.code(rp_client, scope="openid offline_access")
    assert flow.exchange(rp_client, secret, code, verifier).status_code == 200

    assert flow.exchange(rp_client, secret, code, verifier).status_code == 400

    [record] = recorded(caplog, "code.reuse_detected", code, verifier, secret)
    assert record.levelno == logging.WARNING and record.client_id == rp_client.client_id and record.family_id


def test_token_revoked_by_its_client(client, rp, tokens, caplog):
    rp_client, secret = rp
    assert revoke(client, rp_client, secret, tokens["access_token"]).status_code == 200
    assert revoke(client, rp_client, secret, tokens["refresh_token"]).status_code == 200
    records = recorded(caplog, "token.revoked", tokens["access_token"], tokens["refresh_token"], secret)
    assert [r.kind for r in records] == ["access_token", "refresh_token"]
    assert records[0].jti and records[1].family_id and {r.client_id for r in records} == {rp_client.client_id}


def test_logout(client, flow, rp, tokens, caplog):
    token = flow.csrf("/logout")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 200
    [record] = recorded(caplog, "logout", tokens["id_token"], tokens["access_token"])
    assert record.sid and record.sub


def test_client_created_deleted_and_secret_rotated(cli, store, keyring, caplog):  # noqa: F811
    code, out, _ = cli("clients", "create", "--name", "svc", "--grant-type", "client_credentials", "--json")
    assert code == 0
    created = json.loads(out)
    code, out, _ = cli("clients", "rotate-secret", created["client_id"], "--json")
    assert code == 0
    rotated = json.loads(out)
    assert cli("clients", "delete", created["client_id"], "--json")[0] == 0

    secrets = (created["client_secret"], rotated["client_secret"])
    for event in ("client.created", "client.secret_rotated", "client.deleted"):
        [record] = recorded(caplog, event, *secrets)
        assert record.client_id == created["client_id"]


def test_token_revoked_by_admin(cli, store, keyring, caplog):  # noqa: F811
    code, _, err = cli("tokens", "revoke", "--sub", "u_someone", "--json")
    assert code == 0, err
    [record] = recorded(caplog, "token.revoked_by_admin")
    assert record.sub == "u_someone"


def test_key_added_rotated_and_pruned(cli, keyring, caplog):  # noqa: F811
    added = json.loads(cli("keys", "add", "--json")[1])
    [record] = recorded(caplog, "key.added", "PRIVATE KEY")
    assert record.kid == added["kid"]

    rotated = json.loads(cli("keys", "rotate", "--force", "--json")[1])
    [record] = recorded(caplog, "key.rotated", "PRIVATE KEY")
    assert record.kid == rotated["active"]["kid"] == added["kid"]

    # A `next` key replaced before it ever signed is dropped from the ring.
    waiting = rotated["next"]["kid"]
    cli("keys", "add", "--json")
    assert waiting in [r.kid for r in recorded(caplog, "key.pruned", "PRIVATE KEY")]

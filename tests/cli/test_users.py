"""``python -m authsvc users create | list | disable | set-password``, checked at the login form and /token."""

import logging
from urllib.parse import urlencode

import pytest

from tests.conftest import pkce_pair
from tests.conftest import query_of
from tests.oauth_calls import claims_of
from tests.oauth_calls import refresh
from tests.oauth_calls import user_tokens

PASSWORD = "correct horse battery"


@pytest.fixture
def alice(ok, store):
    doc, _ = ok(
        "users",
        "create",
        "--username",
        "alice",
        "--email",
        "alice@example.com",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    return doc


@pytest.fixture
def rp(make_client):
    return make_client("web app", first_party=True, scope="")


def test_create_prints_sub_and_username(alice):
    assert set(alice) == {"sub", "username"}
    assert alice["username"] == "alice"
    assert alice["sub"].startswith("u_") and len(alice["sub"]) > 16


def test_the_created_user_can_sign_in_with_the_stdin_password(alice, flow):
    # The newline a shell adds is not part of the password.
    assert flow.login("alice", PASSWORD).status_code == 303
    assert flow.login("alice", PASSWORD + "\n").status_code == 401


def test_list_shows_users_without_password_hashes(ok, cli, alice):
    listed, _ = ok("users", "list")
    assert listed == [{"sub": alice["sub"], "username": "alice", "email": "alice@example.com", "disabled": False}]
    code, text, _ = cli("users", "list")
    assert code == 0 and "alice" in text
    for out in (text, str(listed)):
        assert "$argon2" not in out and PASSWORD not in out


def test_create_requires_password_stdin(fails, ok, store):
    line = fails("users", "create", "--username", "bob", "--json", stdin=PASSWORD + "\n")
    assert "--password-stdin" in line
    assert ok("users", "list")[0] == []


@pytest.mark.parametrize("username", ["alice", "ALICE", "Alice", "\uff21lice"])
def test_usernames_are_unique_case_insensitively(fails, ok, alice, username):
    fails("users", "create", "--username", username, "--password-stdin", "--json", stdin="another password\n")
    assert [u["username"] for u in ok("users", "list")[0]] == ["alice"]


@pytest.mark.parametrize(
    "username, password",
    [("bob", "\n"), ("bob", ""), ("bob", "x" * 2000 + "\n"), ("", "pw\n"), ("bo b", "pw\n"), ("bo\x00b", "pw\n")],
)
def test_create_refuses_bad_input(fails, ok, store, username, password):
    fails("users", "create", "--username", username, "--password-stdin", "--json", stdin=password)
    assert ok("users", "list")[0] == []


def test_disable_blocks_login_and_every_token(ok, fails, alice, rp, flow, client):
    record, secret = rp
    tokens = user_tokens(flow, record, secret)
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 200

    disabled, _ = ok("users", "disable", "alice")
    assert disabled == {"sub": alice["sub"], "username": "alice", "disabled": True}
    assert ok("users", "list")[0][0]["disabled"] is True

    assert flow.login("alice", PASSWORD).status_code == 401
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    response = refresh(client, record, secret, tokens["refresh_token"])
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"
    listed = client.get("/revocations").json["sub"]
    assert alice["sub"] in {entry["sub"] for entry in listed}


def test_set_password_changes_what_authenticates(ok, alice, flow):
    changed, _ = ok("users", "set-password", "alice", "--password-stdin", stdin="a brand new passphrase\n")
    assert changed == {"sub": alice["sub"], "username": "alice"}
    assert flow.login("alice", PASSWORD).status_code == 401
    assert flow.login("alice", "a brand new passphrase").status_code == 303


def signed_in(client, record) -> bool:
    """Whether the browser's session cookie still counts: /authorize with prompt=none answers a code."""
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": record.client_id,
        "redirect_uri": record.redirect_uris[0],
        "scope": "openid",
        "prompt": "none",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    response = client.get("/authorize?" + urlencode(params))
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    query = query_of(response.headers["Location"])
    assert "code" in query or query.get("error") == "login_required", query
    return "code" in query


def test_set_password_signs_the_user_out_everywhere(ok, alice, rp, flow, client, clock, caplog):
    """Whoever knew the old password may hold a session or tokens: a new password ends them all."""
    caplog.set_level(logging.INFO, logger="authsvc.security")
    record, secret = rp
    tokens = user_tokens(flow, record, secret)
    assert signed_in(client, record)

    ok("users", "set-password", "alice", "--password-stdin", stdin="a brand new passphrase\n")

    # The old browser session no longer counts as logged in …
    assert not signed_in(client, record)
    # … the old refresh token is refused …
    response = refresh(client, record, secret, tokens["refresh_token"])
    assert response.status_code == 400 and response.json["error"] == "invalid_grant"
    # … and access tokens issued before are revoked, for every verifier, by a `sub` entry.
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    [entry] = [e for e in client.get("/revocations").json["sub"] if e["sub"] == alice["sub"]]
    assert entry["before"] > claims_of(tokens["access_token"])["iat"]
    events = [r for r in caplog.records if getattr(r, "event", None) == "user.password_changed"]
    assert [e.sub for e in events] == [alice["sub"]]
    assert "a brand new passphrase" not in caplog.text

    # Signing in again with the new password starts a session that works.
    clock.now = float(int(entry["before"]) + 1)
    assert flow.login("alice", "a brand new passphrase").status_code == 303
    assert signed_in(client, record)
    fresh = user_tokens(flow, record, secret, login=False)
    assert refresh(client, record, secret, fresh["refresh_token"]).status_code == 200


def test_set_password_errors(fails, alice, flow):
    assert "--password-stdin" in fails("users", "set-password", "alice", "--json", stdin="new one\n")
    fails("users", "set-password", "alice", "--password-stdin", "--json", stdin="\n")
    fails("users", "set-password", "nobody", "--password-stdin", "--json", stdin="new one\n")
    assert flow.login("alice", PASSWORD).status_code == 303


def test_disable_unknown_user(fails, store):
    fails("users", "disable", "nobody", "--json")


def test_user_changes_are_security_events_naming_only_the_subject(ok, store, caplog):
    caplog.set_level(logging.INFO, logger="authsvc.security")
    created, _ = ok("users", "create", "--username", "bob", "--password-stdin", stdin=PASSWORD + "\n")
    ok("users", "set-password", "bob", "--password-stdin", stdin="another passphrase\n")
    ok("users", "disable", "bob")

    events = [(r.event, r.sub) for r in caplog.records if getattr(r, "event", None)]
    sub = created["sub"]
    assert events == [("user.created", sub), ("user.password_changed", sub), ("user.disabled", sub)]
    assert PASSWORD not in caplog.text and "another passphrase" not in caplog.text

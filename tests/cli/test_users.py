"""``python -m authsvc users create | list | disable | set-password``, checked at the login form and /token."""

import pytest

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


def test_set_password_errors(fails, alice, flow):
    assert "--password-stdin" in fails("users", "set-password", "alice", "--json", stdin="new one\n")
    fails("users", "set-password", "alice", "--password-stdin", "--json", stdin="\n")
    fails("users", "set-password", "nobody", "--password-stdin", "--json", stdin="new one\n")
    assert flow.login("alice", PASSWORD).status_code == 303


def test_disable_unknown_user(fails, store):
    fails("users", "disable", "nobody", "--json")

"""The ``keys`` commands on the database key store (``AUTHSVC_KEY_STORE=database``), and moving a ring."""

import base64
import logging
import secrets

import pytest

from authsvc.app import create_app
from tests.conftest import basic_auth


@pytest.fixture
def kek():
    return secrets.token_urlsafe(32)


@pytest.fixture
def database_ring(ok, monkeypatch, kek, tmp_path):
    """No key directory at all: the ring lives in the (upgraded) database."""
    monkeypatch.setenv("AUTHSVC_KEY_STORE", "database")
    monkeypatch.setenv("AUTHSVC_KEY_ENCRYPTION_KEY", kek)
    monkeypatch.setenv("AUTHSVC_KEYS_DIR", str(tmp_path / "no-keys-dir"))
    ok("db", "upgrade")


def test_first_run_cron_line_starts_the_database_ring_and_the_app_signs(
    ok, cli, database_ring, settings, tmp_path, kek
):
    assert ok("keys", "list")[0] == []
    # What a Kubernetes first-run job and the CronJob both run.
    started, _ = ok("keys", "rotate", "--if-older-than", "30d")
    assert started["rotated"] is True and started["next"]["status"] == "next"
    again, _ = ok("keys", "rotate", "--if-older-than", "30d")
    assert again["rotated"] is False
    assert not (tmp_path / "no-keys-dir").exists()

    created, _ = ok("clients", "create", "--name", "svc", "--grant-type", "client_credentials")
    app_settings = settings.with_overrides(
        key_store="database",
        keys_dir=str(tmp_path / "no-keys-dir"),
        key_encryption_key=(base64.urlsafe_b64decode(kek + "=" * (-len(kek) % 4)),),
    )
    app = create_app(app_settings)
    response = app.test_client().post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(created["client_id"], created["client_secret"]),
    )
    assert response.status_code == 200, response.json
    jwks = app.test_client().get("/jwks.json").json
    assert {k["kid"] for k in jwks["keys"]} == {started["active"]["kid"], started["next"]["kid"]}


def test_the_same_commands_and_refusal_on_the_database_store(ok, fails, database_ring):
    ok("keys", "rotate")
    assert "--force" in fails("keys", "rotate", "--json")
    added, _ = ok("keys", "add")
    forced, err = ok("keys", "rotate", "--force")
    assert forced["active"]["kid"] == added["kid"] and "forced" in err
    statuses = sorted(k["status"] for k in ok("keys", "list")[0])
    assert statuses == ["active", "next", "retired"]
    assert ok("keys", "prune")[0] == []


def test_rewrap_after_a_kek_change(ok, fails, database_ring, monkeypatch, kek):
    ok("keys", "rotate")
    new = secrets.token_urlsafe(32)
    monkeypatch.setenv("AUTHSVC_KEY_ENCRYPTION_KEY", f"{new},{kek}")
    assert ok("keys", "rewrap")[0] == {"rewrapped": 2}
    monkeypatch.setenv("AUTHSVC_KEY_ENCRYPTION_KEY", new)
    assert ok("keys", "rotate", "--force")[0]["rotated"] is True
    monkeypatch.setenv("AUTHSVC_KEY_ENCRYPTION_KEY", kek)
    line = fails("keys", "rotate", "--force", "--json")
    assert "cannot be decrypted" in line and kek not in line


def test_a_missing_or_bad_kek_is_one_line_naming_the_variable_not_the_value(fails, monkeypatch, settings):
    monkeypatch.setenv("AUTHSVC_KEY_STORE", "database")
    assert "AUTHSVC_KEY_ENCRYPTION_KEY: required" in fails("keys", "list", "--json")
    monkeypatch.setenv("AUTHSVC_KEY_ENCRYPTION_KEY", "not-a-key-at-all")
    line = fails("keys", "list", "--json")
    assert "AUTHSVC_KEY_ENCRYPTION_KEY" in line and "not-a-key-at-all" not in line


def test_migrate_a_file_ring_to_the_database_and_switch(ok, fails, keyring, monkeypatch, kek, settings):
    monkeypatch.setenv("AUTHSVC_KEY_ENCRYPTION_KEY", kek)
    ok("db", "upgrade")
    files_keys = ok("keys", "list")[0]
    moved, _ = ok("keys", "migrate", "--to", "database")
    assert moved["migrated"] is True and moved["keys"] == files_keys
    assert ok("keys", "migrate", "--to", "database")[0]["migrated"] is False  # idempotent
    monkeypatch.setenv("AUTHSVC_KEY_STORE", "database")
    assert ok("keys", "list")[0] == files_keys
    ok("keys", "rotate", "--force")
    # The file ring now differs from the database: moving it again would overwrite.
    monkeypatch.setenv("AUTHSVC_KEY_STORE", "files")
    assert "--force" in fails("keys", "migrate", "--to", "database", "--json")
    assert ok("keys", "migrate", "--to", "database", "--force")[0]["migrated"] is True


def test_security_events_name_keys_never_material(ok, database_ring, caplog):
    caplog.set_level(logging.INFO, logger="authsvc.security")
    ok("keys", "rotate")
    ok("keys", "add")
    ok("keys", "rotate", "--force")
    events = [(r.event, getattr(r, "kid", None)) for r in caplog.records if hasattr(r, "event")]
    names = [name for name, _ in events]
    assert names.count("key.rotated") == 2 and "key.added" in names and "key.pruned" in names
    assert all(kid for _, kid in events)
    assert "PRIVATE" not in caplog.text

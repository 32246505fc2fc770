"""``python -m authsvc db upgrade``: creates the schema, then changes nothing, on SQLite and PostgreSQL."""

import pytest

from tests.dbs import postgres_url_or_skip


def test_upgrade_creates_the_schema_then_is_idempotent(ok, fails):
    assert "db upgrade" in fails("users", "list", "--json")
    first, _ = ok("db", "upgrade")
    assert first["schema_version"] >= 1 and first["applied"]
    ok("users", "create", "--username", "alice", "--password-stdin", stdin="pw pw pw\n")

    again, _ = ok("db", "upgrade")
    assert again == {"schema_version": first["schema_version"], "applied": []}
    # Nothing was dropped and re-created.
    assert [u["username"] for u in ok("users", "list")[0]] == ["alice"]


def test_upgrade_text_output(cli):
    code, out, err = cli("db", "upgrade")
    assert code == 0 and err == ""
    assert "schema at version" in out


def test_upgrade_on_postgresql(ok, monkeypatch, request):
    monkeypatch.setenv("AUTHSVC_DATABASE_URL", postgres_url_or_skip(request))
    first, _ = ok("db", "upgrade")
    assert first["applied"]
    ok("clients", "create", "--name", "svc", "--grant-type", "client_credentials")
    again, _ = ok("db", "upgrade")
    assert again == {"schema_version": first["schema_version"], "applied": []}
    assert len(ok("clients", "list")[0]) == 1


@pytest.mark.parametrize(
    "url",
    ["mysql://db/authsvc", "not a url", "postgresql+psycopg://nobody@127.0.0.1:1/none"],
)
def test_upgrade_with_an_unusable_database_fails_in_one_line(fails, monkeypatch, url):
    monkeypatch.setenv("AUTHSVC_DATABASE_URL", url)
    line = fails("db", "upgrade", "--json")
    assert "AUTHSVC_DATABASE_URL" in line or "database" in line.lower()

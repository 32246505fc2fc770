"""Tests of authsvc.config: AUTHSVC_* defaults, parsing, and start-up refusal on a bad value."""

import os
import subprocess
import sys

import pytest

from authsvc.config import Settings
from authsvc.errors import ConfigError
from tests.servers import ROOT


def test_defaults_are_the_contract_table():
    settings = Settings.from_env({})
    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.database_url == "sqlite:///instance/authsvc.db"
    assert settings.redis_url is None
    assert settings.keys_dir.rstrip("/") == "keys"
    assert settings.bind == "127.0.0.1:8000"
    assert settings.signing_alg == "RS256"
    assert settings.access_token_ttl == 600
    assert settings.id_token_ttl == 600
    assert settings.refresh_token_ttl == 1209600


def test_empty_values_and_foreign_variables_leave_the_defaults():
    environ = {
        "AUTHSVC_ISSUER": "",
        "AUTHSVC_ACCESS_TOKEN_TTL": "",
        "ISSUER": "https://nope.example",
        "AUTHSVC_NOPE": "1",
    }
    assert Settings.from_env(environ) == Settings.from_env({})


def test_every_variable_is_parsed_with_its_type():
    environ = {
        "AUTHSVC_ISSUER": "https://id.example.com/tenant",
        "AUTHSVC_DATABASE_URL": "postgresql+psycopg://authsvc@db.internal:5432/authsvc",
        "AUTHSVC_REDIS_URL": "redis://cache.internal:6379/2",
        "AUTHSVC_KEYS_DIR": "/run/secrets/authsvc-keys",
        "AUTHSVC_BIND": "0.0.0.0:9000",
        "AUTHSVC_SIGNING_ALG": "ES256",
        "AUTHSVC_ACCESS_TOKEN_TTL": "300",
        "AUTHSVC_ID_TOKEN_TTL": " 900 ",
        "AUTHSVC_REFRESH_TOKEN_TTL": "86400",
    }
    settings = Settings.from_env(environ)
    assert settings.issuer == "https://id.example.com/tenant"
    assert settings.database_url == "postgresql+psycopg://authsvc@db.internal:5432/authsvc"
    assert settings.redis_url == "redis://cache.internal:6379/2"
    assert settings.keys_dir == "/run/secrets/authsvc-keys"
    assert settings.bind == "0.0.0.0:9000"
    assert settings.signing_alg == "ES256"
    assert (settings.access_token_ttl, settings.id_token_ttl, settings.refresh_token_ttl) == (300, 900, 86400)
    assert isinstance(settings.access_token_ttl, int)
    # The longest lifetime a retired key must outlive, leeway included.
    assert settings.longest_token_ttl == 900 + settings.leeway


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_each_signing_algorithm_is_accepted(alg):
    assert Settings.from_env({"AUTHSVC_SIGNING_ALG": alg}).signing_alg == alg


@pytest.mark.parametrize(
    "issuer",
    [
        "http://127.0.0.1:8000",
        "http://localhost:5000",
        "http://[::1]:8000",
        "https://id.example.com",
        "https://id.example.com:8443/t",
    ],
)
def test_acceptable_issuers(issuer):
    assert Settings.from_env({"AUTHSVC_ISSUER": issuer}).issuer == issuer


@pytest.mark.parametrize(
    "name, value",
    [
        ("AUTHSVC_ACCESS_TOKEN_TTL", "abc"),
        ("AUTHSVC_ACCESS_TOKEN_TTL", "1e3"),
        ("AUTHSVC_ACCESS_TOKEN_TTL", "600s"),
        ("AUTHSVC_ACCESS_TOKEN_TTL", "0"),
        ("AUTHSVC_ACCESS_TOKEN_TTL", "-5"),
        ("AUTHSVC_ID_TOKEN_TTL", "10.5"),
        ("AUTHSVC_REFRESH_TOKEN_TTL", "99999999999"),
        ("AUTHSVC_SIGNING_ALG", "HS256"),
        ("AUTHSVC_SIGNING_ALG", "none"),
        ("AUTHSVC_SIGNING_ALG", "rs256"),
        ("AUTHSVC_ISSUER", "https://id.example.com/"),
        ("AUTHSVC_ISSUER", "http://id.example.com"),
        ("AUTHSVC_ISSUER", "https://id.example.com?tenant=1"),
        ("AUTHSVC_ISSUER", "https://id.example.com#x"),
        ("AUTHSVC_ISSUER", "ftp://id.example.com"),
        ("AUTHSVC_ISSUER", "id.example.com"),
        ("AUTHSVC_ISSUER", "https://[::1"),
        ("AUTHSVC_ISSUER", "https://id.example.com:99999"),
        ("AUTHSVC_BIND", "127.0.0.1"),
        ("AUTHSVC_BIND", ":8000"),
        ("AUTHSVC_BIND", "127.0.0.1:http"),
        ("AUTHSVC_BIND", "127.0.0.1:99999"),
        ("AUTHSVC_DATABASE_URL", "mysql://db/authsvc"),
        ("AUTHSVC_REDIS_URL", "http://cache:6379"),
    ],
)
def test_a_bad_value_raises_config_error_naming_the_variable(name, value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({name: value})
    message = str(raised.value)
    assert message.startswith(name + ":"), message
    assert "\n" not in message


def test_overrides_are_validated_like_the_environment():
    with pytest.raises(ConfigError, match="AUTHSVC_SIGNING_ALG"):
        Settings.from_env({}, signing_alg="HS256")
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.from_env({}, no_such_setting=1)
    assert Settings.from_env({}, access_token_ttl=5).access_token_ttl == 5


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.issuer = "https://evil.example"


@pytest.mark.parametrize(
    "name, value",
    [
        ("AUTHSVC_ACCESS_TOKEN_TTL", "abc"),
        ("AUTHSVC_ISSUER", "https://[::1"),
        ("AUTHSVC_BIND", "127.0.0.1"),
    ],
)
def test_serve_with_a_bad_variable_exits_with_one_line(tmp_path, name, value):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env.update(
        {
            "AUTHSVC_DATABASE_URL": f"sqlite:///{tmp_path / 'authsvc.db'}",
            "AUTHSVC_KEYS_DIR": str(tmp_path / "keys"),
            "AUTHSVC_BIND": "127.0.0.1:1",
            name: value,
        }
    )
    result = subprocess.run(
        [sys.executable, "-m", "authsvc", "serve"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert "Traceback" not in result.stderr

"""deploy/compose.yaml is a valid Compose file that brings up a fleet in the right order,
and deploy/haproxy.cfg is a configuration HAProxy accepts, checking the replicas' /readyz.

compose-spec.json beside this file is the Compose Specification's JSON schema (repository
compose-spec/compose-spec, schema/compose-spec.json, Apache-2.0), kept here so the test runs
offline.
"""

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from authsvc import gunicorn_config

from .tools import DEPLOY
from .tools import require_tool

COMPOSE_SCHEMA = Path(__file__).with_name("compose-spec.json")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"{duration!r}: write durations in seconds, e.g. 30s"
    return int(match.group(1))


def test_validates_against_the_compose_schema(compose):
    validator = jsonschema.Draft7Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    errors = [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_replicas_start_after_the_schema_and_the_key_ring(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "keyring", "authsvc", "haproxy"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["keyring"]["command"] == ["keys", "rotate", "--if-older-than", "30d"]
    assert services["keyring"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["authsvc"]["depends_on"]["keyring"]["condition"] == "service_completed_successfully"
    assert services["authsvc"]["deploy"]["replicas"] == 3
    for name in ("migrate", "keyring", "authsvc"):
        assert services[name]["environment"]["AUTHSVC_KEY_STORE"] == "database", name


def test_a_stopping_replica_gets_gunicorns_graceful_timeout(compose):
    assert seconds(compose["services"]["authsvc"]["stop_grace_period"]) > gunicorn_config.graceful_timeout


def test_secrets_come_from_env_files_not_from_the_compose_file(compose):
    secret = re.compile(r"PASSWORD|KEY_ENCRYPTION_KEY|DATABASE_URL")
    for name, service in compose["services"].items():
        inlined = [key for key in service.get("environment", {}) if secret.search(key)]
        assert not inlined, f"{name}: {inlined} belong in deploy/secrets/*.env (deploy/make-secrets.sh)"
    assert compose["services"]["authsvc"]["env_file"] == "secrets/authsvc.env"
    assert compose["services"]["postgres"]["env_file"] == "secrets/postgres.env"
    assert "/secrets/" in (DEPLOY / ".gitignore").read_text().split()


def test_haproxy_accepts_the_configuration_and_checks_readyz():
    haproxy = require_tool("haproxy", "apt-get install haproxy")
    config = DEPLOY / "haproxy.cfg"
    # -dW: any warning fails the check too.
    result = subprocess.run([haproxy, "-dW", "-c", "-f", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    text = config.read_text()
    assert re.search(r"(?m)^\s*http-check send meth GET uri /readyz\b", text)
    assert re.search(r"(?m)^\s*server-template authsvc \d+ authsvc:8000\b", text)

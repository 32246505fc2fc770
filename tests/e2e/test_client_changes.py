"""A client deleted, or its secret rotated, with the CLI is refused by every instance within one second.

Each instance keeps the clients it authenticated in memory (authsvc/store/client_cache.py)
instead of reading the database on every token request. Two real gunicorn instances share
one SQLite store; both are warmed up with the client first, so both hold it in memory
when the CLI changes it.
"""

import time

import pytest
import requests

from tests.servers import Instance
from tests.servers import cli_json
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import server_env

PROMISE = 1.0
CC = {"grant_type": "client_credentials"}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    port_a, port_b = free_port(), free_port()
    env = server_env(tmp_path_factory.mktemp("client-changes"), issuer=f"http://127.0.0.1:{port_a}")
    prepare(env)
    instances = []
    try:
        instances.append(Instance(env, port_a))
        instances.append(Instance(env, port_b))
        yield env, instances
    finally:
        for instance in instances:
            instance.stop()


def token_status(instance, client_id, secret) -> int:
    return requests.post(instance.url + "/token", data=CC, auth=(client_id, secret), timeout=10).status_code


def warm(instances, client_id, secret) -> None:
    for instance in instances:
        for _ in range(3):
            assert token_status(instance, client_id, secret) == 200


def assert_refused_within_the_promise(instances, client_id, secret, changed_at: float) -> None:
    """Every request sent a second or more after the change is refused, on every instance.

    Polls until each instance has refused a request sent after the deadline: what
    was accepted before it is allowed, anything accepted after it is the failure.
    """
    for instance in instances:
        accepted_late = []
        while True:
            sent = time.monotonic()
            status = token_status(instance, client_id, secret)
            assert status in (200, 401), status
            if status == 200 and sent >= changed_at + PROMISE:
                accepted_late.append(round(sent - changed_at, 3))
            if status == 401 and sent >= changed_at + PROMISE:
                break
            assert sent < changed_at + 30, "the instance never refused the client"
        assert not accepted_late, (
            f"{instance.url} accepted the client {len(accepted_late)} times from {accepted_late[0]} s after the change"
        )


def test_a_rotated_secret_is_refused_on_every_instance_within_a_second(pair):
    env, instances = pair
    created = cli_json(env, "clients", "create", "--name", "svc", "--grant-type", "client_credentials")
    client_id, old = created["client_id"], created["client_secret"]
    warm(instances, client_id, old)

    new = cli_json(env, "clients", "rotate-secret", client_id)["client_secret"]
    rotated_at = time.monotonic()  # the CLI has committed by the time it exits

    assert_refused_within_the_promise(instances, client_id, old, rotated_at)
    for instance in instances:
        assert token_status(instance, client_id, new) == 200


def test_a_deleted_client_is_refused_on_every_instance_within_a_second(pair):
    env, instances = pair
    created = cli_json(env, "clients", "create", "--name", "svc", "--grant-type", "client_credentials")
    client_id, secret = created["client_id"], created["client_secret"]
    warm(instances, client_id, secret)

    cli_json(env, "clients", "delete", client_id)
    deleted_at = time.monotonic()

    assert_refused_within_the_promise(instances, client_id, secret, deleted_at)

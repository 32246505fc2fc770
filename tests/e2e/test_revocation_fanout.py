"""Revocation across instances: two real gunicorn processes sharing PostgreSQL and Redis.

A revocation made on one instance holds on the other at once (the database
is the truth, not a process's memory), both serve the same revocation list,
and a Redis subscriber hears the entry without polling.
"""

import json
import time

import pytest
import requests

from authsvc.revocation import channel_for
from tests.dbs import postgres_url_or_skip
from tests.servers import Instance
from tests.servers import cli_json
from tests.servers import free_port
from tests.servers import prepare
from tests.servers import server_env
from tests.services_available import redis_url_or_skip


@pytest.fixture(scope="module")
def cluster(request, tmp_path_factory):
    """Instances A and B behind one issuer URL, one database, one Redis and one key ring."""
    database_url = postgres_url_or_skip(request)
    redis_url = redis_url_or_skip()
    port_a, port_b = free_port(), free_port()
    env = server_env(
        tmp_path_factory.mktemp("cluster"),
        issuer=f"http://127.0.0.1:{port_a}",
        database_url=database_url,
        redis_url=redis_url,
        AUTHSVC_WORKERS="1",
    )
    prepare(env)
    instances = []
    try:
        instances.append(Instance(env, port_a))
        instances.append(Instance(env, port_b))
        yield {"a": instances[0], "b": instances[1], "redis_url": redis_url, "env": env}
    finally:
        for instance in instances:
            instance.stop()


@pytest.fixture
def service(cluster):
    """A client of its own per test, so one test's revocations never reach another's."""
    created = cli_json(cluster["env"], "clients", "create", "--name", "svc", "--grant-type", "client_credentials")
    return created["client_id"], created["client_secret"]


@pytest.fixture
def subscriber(cluster):
    import redis

    connection = redis.Redis.from_url(cluster["redis_url"], socket_timeout=5)
    pubsub = connection.pubsub()
    pubsub.subscribe(channel_for(cluster["env"]["AUTHSVC_ISSUER"]))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is not None and message["type"] == "subscribe":
            break
    else:
        pytest.fail("Redis never confirmed the subscription")
    yield pubsub
    pubsub.close()
    connection.close()


def access_token(service, instance) -> str:
    form = {"grant_type": "client_credentials"}
    response = requests.post(instance.url + "/token", data=form, auth=service, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def introspect(service, instance, token) -> dict:
    response = requests.post(instance.url + "/introspect", data={"token": token}, auth=service, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def jti_of(token: str) -> str:
    import jwt

    return jwt.decode(token, options={"verify_signature": False})["jti"]


def heard(pubsub, value, timeout=5.0) -> dict | None:
    """The first fan-out message naming ``value`` (the channel is shared with other runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is None or message["type"] != "message":
            continue
        body = json.loads(message["data"])
        if body.get("value") == value:
            return body
    return None


def test_a_revocation_on_one_instance_holds_on_the_other_at_once(cluster, service, subscriber):
    a, b = cluster["a"], cluster["b"]
    token = access_token(service, a)
    kept = access_token(service, b)
    assert introspect(service, b, token)["active"] is True

    response = requests.post(a.url + "/revoke", data={"token": token}, auth=service, timeout=10)
    assert response.status_code == 200

    # No waiting: B reads the same database, so the very next request knows.
    assert introspect(service, b, token) == {"active": False}
    assert introspect(service, a, kept)["active"] is True
    listed_b = requests.get(b.url + "/revocations", timeout=10)
    assert jti_of(token) in [entry["jti"] for entry in listed_b.json()["jti"]]
    listed_a = requests.get(a.url + "/revocations", timeout=10)
    assert listed_a.json() == listed_b.json()
    assert listed_a.headers["ETag"] == listed_b.headers["ETag"]
    not_modified = requests.get(b.url + "/revocations", headers={"If-None-Match": listed_a.headers["ETag"]}, timeout=10)
    assert not_modified.status_code == 304

    message = heard(subscriber, jti_of(token))
    assert message is not None, "no fan-out message for the revoked jti"
    assert message["kind"] == "jti"
    assert message["version"] == listed_b.json()["version"]


def test_an_admin_revocation_reaches_both_instances_and_the_channel(cluster, service, subscriber):
    a, b = cluster["a"], cluster["b"]
    token = access_token(service, a)
    client_id = service[0]

    printed = cli_json(cluster["env"], "tokens", "revoke", "--client", client_id)

    assert [entry["kind"] for entry in printed] == ["client_id"]
    for instance in (a, b):
        assert introspect(service, instance, token) == {"active": False}
        listed = requests.get(instance.url + "/revocations", timeout=10).json()
        assert client_id in [entry["client_id"] for entry in listed["client_id"]]
    message = heard(subscriber, client_id)
    assert message is not None and message["kind"] == "client_id"
    assert message["before"] == printed[0]["before"]


def test_a_forged_hint_on_the_channel_lasts_only_until_the_verifier_polls(cluster):
    """Anyone who can publish on Redis can hurry a revocation along, never make one stick."""
    import redis

    from authsvc.verify import RevokedToken
    from authsvc.verify import TokenVerifier

    audience = "https://forged-hint.example"
    created = cli_json(
        cluster["env"],
        "clients",
        "create",
        "--name",
        "svc",
        "--grant-type",
        "client_credentials",
        "--audience",
        audience,
    )
    token = access_token((created["client_id"], created["client_secret"]), cluster["a"])
    issuer = cluster["env"]["AUTHSVC_ISSUER"]
    with TokenVerifier(
        issuer, audience, redis_url=cluster["redis_url"], revocation_poll_interval=60.0, max_revocation_staleness=300.0
    ) as verifier:
        verifier.verify(token)
        assert verifier._fanout.subscribed.wait(5), "never subscribed to the fan-out channel"
        served = requests.get(cluster["a"].url + "/revocations", timeout=10).json()["version"]
        now = time.time()
        forged = {"kind": "client_id", "value": created["client_id"], "before": now + 3600, "exp": now + 600}

        def verifies() -> bool:
            try:
                verifier.verify(token)
            except RevokedToken:
                return False
            return True

        def eventually(predicate) -> bool:
            deadline = time.monotonic() + 5
            while not predicate() and time.monotonic() < deadline:
                time.sleep(0.02)
            return predicate()

        publisher = redis.Redis.from_url(cluster["redis_url"], socket_timeout=5)
        try:
            # The next version: applied at once, as a genuine hint would be…
            publisher.publish(channel_for(issuer), json.dumps({"version": served + 1, **forged}))
            assert eventually(lambda: not verifies())
            # …until the next poll, which the issuer answers without it.
            verifier._revocations.wake.set()
            assert eventually(verifies)
            # Far ahead: a gap, which wakes the poller at once; that poll drops it too.
            arrived = verifier._revocations._arrivals
            publisher.publish(channel_for(issuer), json.dumps({"version": 2**62, **forged}))
            assert eventually(lambda: verifier._revocations._arrivals > arrived), "the hint never arrived"
            assert eventually(verifies)
        finally:
            publisher.close()

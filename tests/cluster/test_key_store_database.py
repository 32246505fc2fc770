"""Key rotation on a fleet whose key ring lives in the database (no shared disk), picked up through Redis.

The hosts share no key directory: each has its own, empty and unused. The CLI
rotates from outside the lab; every host must sign with the new key within a
second (Redis wakes their watchers), and a verifier that fetched the JWKS before
the rotation must reject nothing.
"""

import json
import secrets
import time

import jwt
import pytest

from tests.cluster import lab
from tests.cluster.conftest import Fleet
from tests.cluster.conftest import Verifier
from tests.cluster.conftest import _unavailable
from tests.servers import run_cli

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def db_fleet(tmp_path_factory):
    try:
        lab.check_available()
    except lab.LabUnavailable as error:
        _unavailable(str(error))
    tmp = tmp_path_factory.mktemp("cluster-db-keys")
    lab.build_network()
    fleet = None
    try:
        fleet = Fleet(
            tmp,
            {
                "AUTHSVC_KEY_STORE": "database",
                "AUTHSVC_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(32),
                # Nothing is ever written here: the ring is in PostgreSQL.
                "AUTHSVC_KEYS_DIR": str(tmp / "unused-keys"),
            },
        )
        yield fleet
    finally:
        if fleet is not None:
            fleet.stop()
        lab.teardown_network()


def test_rotation_with_the_database_store_is_picked_up_through_redis(db_fleet):
    fleet = db_fleet
    verifier = Verifier(fleet.issuer, fleet.lab_redis, fleet.tmp, poll=30.0, staleness=120.0)
    try:
        old = jwt.get_unverified_header(fleet.token().json()["access_token"])["kid"]
        rotated = run_cli(fleet.root_env, "keys", "rotate", "--force", "--json")
        assert rotated.returncode == 0, rotated.stderr
        committed = time.monotonic()
        new = json.loads(rotated.stdout)["active"]["kid"]
        assert new != old
        first_seen, streak, failures, checked, last_old = None, 0, [], 0, committed
        while streak < 30:
            assert time.monotonic() - committed < 10, "the fleet never signed with the new key everywhere"
            token = fleet.token().json()["access_token"]
            kid = jwt.get_unverified_header(token)["kid"]
            answer = verifier.verify(token)
            checked += 1
            if not answer["ok"]:
                failures.append(answer["error"])
            if kid == new:
                first_seen = first_seen or time.monotonic()
                streak += 1
            else:
                streak = 0
                last_old = time.monotonic()
        pickup = last_old - committed
        print(
            f"\ndatabase key ring: last old-key token {pickup:.3f} s after the CLI returned "
            f"(first new kid after {first_seen - committed:.3f} s; {checked} tokens, {len(failures)} rejected)"
        )
        assert failures == []
        assert pickup < 1.0
        assert not (fleet.tmp / "unused-keys").exists()
    finally:
        verifier.stop()

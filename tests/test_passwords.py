"""argon2id parameters from the settings (AUTHSVC_ARGON2_*), never below OWASP's minimum;
stored hashes follow the settings on the next successful login; unknown users cost the same."""

import time
from dataclasses import replace

import pytest
from argon2 import PasswordHasher
from argon2 import extract_parameters

from authsvc import accounts
from authsvc.config import Settings
from authsvc.errors import ConfigError

PASSWORD = "correct horse battery"


def parameters(encoded: str) -> tuple[int, int, int]:
    found = extract_parameters(encoded)
    return found.memory_cost, found.time_cost, found.parallelism


def test_the_default_is_owasps_minimum_profile():
    encoded = accounts.hash_password(PASSWORD)
    assert encoded.startswith("$argon2id$")
    assert parameters(encoded) == (19456, 2, 1)


def test_the_parameters_come_from_the_environment():
    settings = Settings.from_env(
        {"AUTHSVC_ARGON2_MEMORY_KIB": "24576", "AUTHSVC_ARGON2_TIME_COST": "3", "AUTHSVC_ARGON2_PARALLELISM": "2"}
    )
    assert parameters(accounts.hash_password(PASSWORD, settings)) == (24576, 3, 2)


@pytest.mark.parametrize(
    "name, value",
    [
        ("AUTHSVC_ARGON2_MEMORY_KIB", "19455"),
        ("AUTHSVC_ARGON2_TIME_COST", "1"),
        ("AUTHSVC_ARGON2_PARALLELISM", "0"),
        ("AUTHSVC_ARGON2_MEMORY_KIB", "4194304"),
        ("AUTHSVC_ARGON2_TIME_COST", "two"),
    ],
)
def test_parameters_below_the_floor_or_absurd_stop_the_start(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


@pytest.fixture
def stored_user(store):
    """A user whose hash has argon2-cffi's old defaults (m=64 MiB, t=3, p=4), as older versions stored."""

    def make(hasher=None, username="alice"):
        user = accounts.new_user(username, PASSWORD, None, time.time())
        user = replace(user, password_hash=(hasher or PasswordHasher()).hash(PASSWORD))
        store.create_user(user)
        return user

    return make


def test_a_stored_hash_follows_the_settings_on_the_next_successful_login(store, stored_user):
    user = stored_user()
    assert parameters(user.password_hash) == (65536, 3, 4)
    signed_in = accounts.authenticate(store, "alice", PASSWORD, Settings())
    assert signed_in.sub == user.sub
    assert parameters(store.get_user(user.sub).password_hash) == (19456, 2, 1)
    # The new hash still verifies, and a second login leaves it alone.
    again = store.get_user(user.sub).password_hash
    assert accounts.authenticate(store, "alice", PASSWORD, Settings()) is not None
    assert store.get_user(user.sub).password_hash == again


def test_raised_settings_reach_a_stored_hash_on_the_next_login(store, stored_user):
    user = stored_user(PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1))
    raised = Settings().with_overrides(argon2_memory_kib=32768, argon2_time_cost=3)
    assert accounts.authenticate(store, "alice", PASSWORD, raised) is not None
    assert parameters(store.get_user(user.sub).password_hash) == (32768, 3, 1)


def test_a_failed_or_refused_login_rewrites_nothing(store, stored_user):
    user = stored_user()
    assert accounts.authenticate(store, "alice", "wrong password", Settings()) is None
    assert store.get_user(user.sub).password_hash == user.password_hash
    store.update_user(user.sub, lambda u: replace(u, disabled=True))
    assert accounts.authenticate(store, "alice", PASSWORD, Settings()) is None
    assert store.get_user(user.sub).password_hash == user.password_hash


def test_an_unknown_user_costs_a_verification_with_the_configured_parameters(store, monkeypatch):
    verified = []
    real = PasswordHasher.verify
    monkeypatch.setattr(
        PasswordHasher, "verify", lambda self, encoded, pw: verified.append(encoded) or real(self, encoded, pw)
    )
    for settings in (Settings(), Settings().with_overrides(argon2_memory_kib=24576, argon2_time_cost=3)):
        verified.clear()
        assert accounts.authenticate(store, "nobody", PASSWORD, settings) is None
        assert [parameters(encoded) for encoded in verified] == [
            (settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism)
        ]


class TestTheLoginPage:
    @pytest.fixture
    def settings(self, settings):
        return settings.with_overrides(argon2_time_cost=3)

    def test_signing_in_upgrades_the_hash_to_the_servers_settings(self, flow, services, alice):
        assert parameters(alice.password_hash) == (19456, 2, 1)
        response = flow.login()
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:300]
        assert parameters(services.store.get_user(alice.sub).password_hash) == (19456, 3, 1)

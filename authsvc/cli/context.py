"""What the commands share: settings from the environment, opened lazily."""

import time

from ..config import Settings
from ..keyring import KeyRing
from ..services import build
from ..services import open_keyring
from ..store import open_store


def settings() -> Settings:
    return Settings.from_env()


def store():
    return open_store(settings().database_url)


def keyring(create: bool = False):
    return open_keyring(settings(), create=create)


def keyring_to_manage() -> KeyRing:
    """The ring as the ``keys`` commands see it: one never started is a ring with no keys."""
    s = settings()
    return KeyRing(s.keys_dir, retire_after=s.longest_token_ttl, allow_empty=True)


def services():
    return build(settings())


def now() -> float:
    return time.time()

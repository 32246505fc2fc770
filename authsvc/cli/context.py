"""What the commands share: settings from the environment, opened lazily."""

import time

from ..config import Settings
from ..keyring import KeyRing
from ..services import build
from ..services import open_key_store
from ..services import open_keyring
from ..store import open_store


def settings() -> Settings:
    return Settings.from_env()


def store():
    return open_store(settings().database_url)


def keyring(create: bool = False):
    return open_keyring(settings(), create=create)


def keyring_to_manage() -> KeyRing:
    """The ring as the ``keys`` commands see it, in either store: one never started is a ring
    with no keys, and no private key is loaded (so listing 50 keys parses none)."""
    return open_keyring(settings(), manage=True)


def key_store(kind: str):
    """The backend of ``kind`` ("files" or "database") for these settings, whatever AUTHSVC_KEY_STORE says."""
    return open_key_store(settings(), kind)


def services():
    # A command runs once and exits: no background reloading of the key ring.
    return build(settings(), watch_keys=False)


def now() -> float:
    return time.time()

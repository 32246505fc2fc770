"""What the commands share: settings from the environment, opened lazily."""

import time

from ..config import Settings
from ..services import build
from ..services import open_keyring
from ..store import open_store


def settings() -> Settings:
    return Settings.from_env()


def store():
    return open_store(settings().database_url)


def keyring(create: bool = False):
    return open_keyring(settings(), create=create)


def services():
    return build(settings())


def now() -> float:
    return time.time()

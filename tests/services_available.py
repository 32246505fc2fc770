"""Redis for tests: the local server, or a visible skip.

``redis_url_or_skip()`` returns a URL to a Redis that answers PING, from
AUTHSVC_TEST_REDIS_URL or the local default. When none answers the test is
skipped with the reason, except under CI=true, where it fails: CI must never
pass by skipping (the same rule as tests/dbs.py for PostgreSQL).

Redis is shared by every test and every engineer's run, and pub/sub channels
ignore the database number: tests use unique keys and filter the messages
they read by values they made themselves.
"""

import os

import pytest

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Nothing listens on port 1: connecting fails at once with "connection refused".
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"

# Why Redis was unreachable, once known, so later tests skip at once.
_unreachable: dict[str, str] = {}


def redis_url_or_skip() -> str:
    """Return the URL of a Redis that answers PING; skip (fail under CI) otherwise."""
    url = os.environ.get("AUTHSVC_TEST_REDIS_URL") or DEFAULT_REDIS_URL
    if url in _unreachable:
        _give_up(url, _unreachable[url])
    try:
        import redis
    except ImportError as error:
        _give_up(url, f"the redis package is missing: {error}")
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        _unreachable[url] = f"{type(error).__name__}: {error}"
        _give_up(url, _unreachable[url])
    finally:
        client.close()
    return url


@pytest.fixture
def redis_url() -> str:
    return redis_url_or_skip()


def _give_up(url: str, reason: str) -> None:
    message = f"Redis not reachable at {url} ({reason}): start it or set AUTHSVC_TEST_REDIS_URL"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)

"""Shared by the CLI tests: cheap hashing and key rings, and two checks every
command must pass — ``--json`` prints exactly one JSON document on stdout,
and a failure is one line on stderr with a non-zero status, no traceback.
"""

import json

import pytest

from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401


@pytest.fixture(autouse=True)
def _cheap_hashing(fast_hashing):  # noqa: F811
    """Argon2 at its smallest legal cost: the CLI runs in-process, so it uses it too."""


def one_json_document(out: str):
    """Parse stdout, asserting it holds one JSON document and nothing else."""
    assert out.endswith("\n") and out.count("\n") == 1, f"expected one line of JSON, got {out!r}"
    return json.loads(out)


@pytest.fixture
def ok(cli):
    """Run a command with ``--json``; assert success and one JSON document; return (doc, stderr)."""

    def run(*args, stdin=None):
        code, out, err = cli(*args, "--json", stdin=stdin)
        assert code == 0, err
        assert "Traceback" not in err
        return one_json_document(out), err

    return run


@pytest.fixture
def fails(cli):
    """Run a command expected to fail; assert one line on stderr; return that line."""

    def run(*args, stdin=None):
        code, out, err = cli(*args, stdin=stdin)
        assert code not in (0, None), (code, out, err)
        assert out == "", out
        assert "Traceback" not in err
        lines = err.splitlines()
        assert len(lines) == 1, err
        return lines[0]

    return run

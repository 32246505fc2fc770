"""``keys add | rotate | list | prune``: the signing key ring."""

import re

import click

from ..config import SIGNING_ALGS
from ..keyring import Status
from . import context
from .output import emit
from .output import json_option
from .output import warn

alg_option = click.option("--alg", type=click.Choice(SIGNING_ALGS), default=None, help="Default: AUTHSVC_SIGNING_ALG.")


@click.group("keys")
def command():
    """Manage signing keys."""


@command.command("add")
@alg_option
@click.option("--bits", type=int, default=2048, show_default=True, help="RSA key size.")
@json_option
def add(alg, bits, as_json):
    """Publish a new key as `next`; it does not sign yet."""
    ring = context.keyring_to_manage()
    key = ring.add(alg or context.settings().signing_alg, bits=bits)
    if not any(k.alg == key.alg and k.status is Status.ACTIVE for k in ring.keys()):
        warn(f"no {key.alg} key signs yet: `keys rotate --alg {key.alg}` makes this one active")
    emit(key.describe(), as_json, f"added {key.alg} key {key.kid} (next)")


@command.command("rotate")
@alg_option
@click.option("--if-older-than", "older", default=None, help="Only rotate when the active key is older, e.g. 30d, 12h.")
@json_option
def rotate(alg, older, as_json):
    """Promote the `next` key (or a new one) to active; retire the old active key.

    On a ring with no key of the algorithm (a first start), this creates and activates one.
    """
    ring = context.keyring_to_manage()
    # An empty value (an unset variable in a cron line) is an error, not "rotate now".
    seconds = parse_duration(older) if older is not None else None
    serving = any(key.status is Status.ACTIVE for key in ring.keys())
    result = ring.rotate(alg or context.settings().signing_alg, if_older_than=seconds)
    if result.activated is None:
        emit(
            {"rotated": False, "reason": "active key is younger than --if-older-than"},
            as_json,
            "not rotated: the active key is younger than --if-older-than",
        )
        return
    # A ring that signed nothing before (a first start) has no verifier caching its JWKS.
    if serving and result.published_for < ring.jwks_max_age:
        warn(
            f"the new key was published for {int(result.published_for)} s, less than the JWKS max-age "
            f"({ring.jwks_max_age} s): verifiers with a cached JWKS refetch on its unknown kid"
        )
    doc = {
        "rotated": True,
        "active": result.activated.describe(),
        "retired": result.retired.describe() if result.retired else None,
    }
    emit(
        doc, as_json, f"active: {result.activated.kid}" + (f"; retired: {result.retired.kid}" if result.retired else "")
    )


@command.command("list")
@json_option
def list_keys(as_json):
    """List keys with their status."""
    emit([key.describe() for key in context.keyring_to_manage().keys()], as_json)


@command.command("prune")
@json_option
def prune(as_json):
    """Drop retired keys that no live token can need."""
    dropped = context.keyring_to_manage().prune()
    emit([key.describe() for key in dropped], as_json, f"pruned {len(dropped)} key(s)")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Parse ``30d``, ``12h``, ``90m``, ``45s`` or plain seconds."""
    match = re.fullmatch(r"(\d{1,9})([smhdw]?)", text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 30d, 12h, 90m", param_hint="--if-older-than")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]

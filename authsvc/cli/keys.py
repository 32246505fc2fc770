"""``keys add | rotate | list | prune | migrate | rewrap``: the signing key ring, in either key store."""

import re

import click

from ..config import KEY_STORES
from ..config import SIGNING_ALGS
from ..errors import KeyRingError
from ..events import security_event
from ..keyring import Status
from ..keyring import migrate as migrate_ring
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
    """Publish a new `next` key, replacing the one waiting; it does not sign yet.

    The replaced key never signed anything. The new key must stay published for the
    JWKS max-age before `keys rotate` promotes it without --force.
    """
    ring = context.keyring_to_manage()
    key, replaced = ring.add_next(alg or context.settings().signing_alg, bits=bits)
    security_event("key.added", kid=key.kid, alg=key.alg, status=key.status.value)
    for old in replaced:
        security_event("key.pruned", kid=old.kid, alg=old.alg, status=old.status.value)
    if not any(k.alg == key.alg and k.status is Status.ACTIVE for k in ring.keys()):
        warn(f"no {key.alg} key signs yet: `keys rotate --alg {key.alg}` makes this one active")
    doc = key.describe() | {"replaced": [old.kid for old in replaced]}
    text = f"added {key.alg} key {key.kid} (next)" + (f"; replaced {', '.join(doc['replaced'])}" if replaced else "")
    emit(doc, as_json, text)


@command.command("rotate")
@alg_option
@click.option("--if-older-than", "older", default=None, help="Only rotate when the active key is older, e.g. 30d, 12h.")
@click.option("--force", is_flag=True, help="Rotate even if the next key was published for less than the JWKS max-age.")
@json_option
def rotate(alg, older, force, as_json):
    """Promote the `next` key to active, retire the old one, publish a fresh `next`, prune.

    On a ring with no key of the algorithm (a first start), this creates the active
    key and its successor. A `next` published for less than the JWKS max-age is not
    promoted without --force: verifiers holding an older JWKS would not know it.
    """
    ring = context.keyring_to_manage()
    # An empty value (an unset variable in a cron line) is an error, not "rotate now".
    seconds = parse_duration(older) if older is not None else None
    alg = alg or context.settings().signing_alg
    result = ring.rotate(alg, if_older_than=seconds, min_published=0 if force else ring.jwks_max_age)
    if result.activated is None:
        emit(
            {"rotated": False, "reason": "active key is younger than --if-older-than"},
            as_json,
            "not rotated: the active key is younger than --if-older-than",
        )
        return
    security_event("key.rotated", kid=result.activated.kid, alg=alg, retired=result.retired and result.retired.kid)
    if result.next is not None and result.next.created_at == result.activated.activated_at:
        security_event("key.added", kid=result.next.kid, alg=alg, status=result.next.status.value)
    for key in result.pruned:
        security_event("key.pruned", kid=key.kid, alg=key.alg)
    # Only a key that replaces another can meet verifiers holding an older JWKS.
    if result.retired is not None and result.published_for < ring.jwks_max_age:
        warn(
            f"forced: the new key was published for {int(result.published_for)} s, less than the JWKS max-age "
            f"({ring.jwks_max_age} s): verifiers with an older JWKS refetch on its unknown kid"
        )
    doc = {
        "rotated": True,
        "active": result.activated.describe(),
        "retired": result.retired.describe() if result.retired else None,
        "next": result.next.describe() if result.next else None,
        "pruned": [key.describe() for key in result.pruned],
    }
    text = f"active: {result.activated.kid}" + (f"; retired: {result.retired.kid}" if result.retired else "")
    emit(doc, as_json, text + (f"; next: {result.next.kid}" if result.next else ""))


@command.command("list")
@json_option
def list_keys(as_json):
    """List keys with their status."""
    emit([key.describe() for key in context.keyring_to_manage().keys()], as_json)


@command.command("prune")
@json_option
def prune(as_json):
    """Drop retired keys that no live token can need (rotate does this too)."""
    dropped = context.keyring_to_manage().prune()
    for key in dropped:
        security_event("key.pruned", kid=key.kid, alg=key.alg)
    emit([key.describe() for key in dropped], as_json, f"pruned {len(dropped)} key(s)")


@command.command("migrate")
@click.option("--to", "target", type=click.Choice(KEY_STORES), required=True, help="The key store to move the ring to.")
@click.option("--force", is_flag=True, help="Replace a target ring that holds other keys.")
@json_option
def migrate(target, force, as_json):
    """Copy the ring (keys and session secret) from the other key store into --to.

    Idempotent; the source is left as it is. Then set AUTHSVC_KEY_STORE to the target
    on every instance, and remove the source once none reads it.
    """
    source = "files" if target == "database" else "database"
    source_store, target_store = context.key_store(source), context.key_store(target)
    try:
        copied, wrote = migrate_ring(source_store, target_store, force=force)
    finally:
        source_store.close()
        target_store.close()
    if wrote:
        for key in copied:
            security_event("key.migrated", kid=key.kid, alg=key.alg, status=key.status.value, to=target)
    doc = {"from": source, "to": target, "migrated": wrote, "keys": [key.describe() for key in copied]}
    done = f"moved {len(copied)} key(s)" if wrote else f"{target} already holds these {len(copied)} key(s)"
    emit(doc, as_json, f"{done} from {source} to {target}; set AUTHSVC_KEY_STORE={target} on every instance")


@command.command("rewrap")
@json_option
def rewrap(as_json):
    """Re-encrypt the database ring under the first AUTHSVC_KEY_ENCRYPTION_KEY value."""
    if context.settings().key_store != "database":
        raise KeyRingError("keys rewrap works on the database key ring only: set AUTHSVC_KEY_STORE=database")
    store = context.key_store("database")
    try:
        count = store.rewrap()
    finally:
        store.close()
    emit({"rewrapped": count}, as_json, f"re-encrypted {count} item(s) under the first key-encryption key")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """Parse ``30d``, ``12h``, ``90m``, ``45s`` or plain seconds."""
    match = re.fullmatch(r"(\d{1,9})([smhdw]?)", text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 30d, 12h, 90m", param_hint="--if-older-than")
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]

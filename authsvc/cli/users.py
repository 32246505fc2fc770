"""``users create | list | disable | set-password``."""

import sys
from dataclasses import replace

import click

from .. import accounts
from ..events import security_event
from ..revocation import open_revocations
from . import context
from .output import emit
from .output import json_option

password_stdin = click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")


def read_password(flag: bool) -> str:
    if not flag:
        raise click.UsageError("pass --password-stdin and send the password on standard input")
    # One line; the trailing newline a shell adds is not part of the password.
    return accounts.validate_password(sys.stdin.readline().rstrip("\r\n"))


def revocations(store):
    # Revoking needs the store (and Redis when configured), not the key ring.
    return open_revocations(context.settings(), store, context.now)


def describe(user) -> dict:
    return {"sub": user.sub, "username": user.username, "email": user.email, "disabled": user.disabled}


@click.group("users")
def command():
    """Manage users."""


@command.command("create")
@click.option("--username", required=True)
@click.option("--email", default=None)
@password_stdin
@json_option
def create(username, email, password_stdin, as_json):
    """Create a user (password hashed with argon2id)."""
    user = accounts.new_user(username, read_password(password_stdin), email, context.now(), context.settings())
    store = context.store()
    try:
        store.create_user(user)
    finally:
        store.close()
    security_event("user.created", sub=user.sub)
    emit({"sub": user.sub, "username": user.username}, as_json, f"created {user.username} (sub {user.sub})")


@command.command("list")
@json_option
def list_users(as_json):
    """List users (never their password hashes)."""
    store = context.store()
    try:
        emit([describe(u) for u in store.list_users()], as_json)
    finally:
        store.close()


@command.command("disable")
@click.argument("username")
@json_option
def disable(username, as_json):
    """Disable a user and revoke everything they hold."""
    store = context.store()
    try:
        user = store.get_user_by_username(username)
        store.update_user(user.sub, lambda u: replace(u, disabled=True))
        revocations(store).revoke_subject(user.sub)
    finally:
        store.close()
    security_event("user.disabled", sub=user.sub)
    emit({"sub": user.sub, "username": user.username, "disabled": True}, as_json, f"disabled {user.username}")


@command.command("set-password")
@click.argument("username")
@password_stdin
@json_option
def set_password(username, password_stdin, as_json):
    """Set a user's password and sign them out everywhere.

    Every browser session, refresh token and access token issued before the
    change is revoked: whoever knew the old password may hold any of them.
    """
    password_hash = accounts.hash_password(read_password(password_stdin), context.settings())
    store = context.store()
    try:
        user = store.get_user_by_username(username)
        store.update_user(user.sub, lambda u: replace(u, password_hash=password_hash))
        # After the update, not before: a sign-in with the old password between
        # the two would otherwise start a session that outlives the change.
        revocations(store).revoke_subject(user.sub)
    finally:
        store.close()
    security_event("user.password_changed", sub=user.sub)
    emit(
        {"sub": user.sub, "username": user.username},
        as_json,
        f"password set for {user.username}; their sessions and tokens are revoked",
    )

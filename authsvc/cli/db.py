"""``db upgrade``: create or migrate the schema."""

import click

from . import context
from .output import emit
from .output import json_option


@click.group("db")
def command():
    """Manage the database schema."""


@command.command("upgrade")
@json_option
def upgrade(as_json):
    """Create or migrate the schema (idempotent)."""
    store = context.store()
    try:
        applied = store.upgrade()
        version = store.schema_version()
    finally:
        store.close()
    text = f"schema at version {version}" + (f" (applied: {', '.join(applied)})" if applied else " (up to date)")
    emit({"schema_version": version, "applied": applied}, as_json, text)

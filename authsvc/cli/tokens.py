"""``tokens revoke``: revoke one token id, or everything a user or client holds."""

import click

from ..events import security_event
from . import context
from .output import emit
from .output import json_option


@click.group("tokens")
def command():
    """Revoke tokens."""


@command.command("revoke")
@click.option("--jti", default=None, help="One access token, by its jti.")
@click.option("--sub", default=None, help="Everything this user holds now.")
@click.option("--client", "client_id", default=None, help="Everything issued to this client until now.")
@json_option
def revoke(jti, sub, client_id, as_json):
    """List a revocation; verifiers pick it up on their next poll (or at once with Redis)."""
    chosen = [name for name, value in (("--jti", jti), ("--sub", sub), ("--client", client_id)) if value]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --jti, --sub, --client")
    services = context.services()
    try:
        if jti:
            # The issuer keeps no access tokens, so the exp is unknown: list it for the longest lifetime.
            entries = services.revocations.revoke_jtis([(jti, services.clock() + services.settings.access_token_ttl)])
        elif sub:
            entries = services.revocations.revoke_subject(sub)
        else:
            entries = services.revocations.revoke_client(client_id)
    finally:
        services.close()
    security_event("token.revoked_by_admin", jti=jti, sub=sub, client_id=client_id)
    doc = [{"kind": e.kind, "value": e.value, "version": e.version, "before": e.before, "exp": e.exp} for e in entries]
    emit(doc, as_json, f"revoked ({', '.join(f'{e.kind} {e.value}' for e in entries)})")

"""``clients create | list | delete | rotate-secret``."""

from dataclasses import replace

import click

from .. import accounts
from ..config import SIGNING_ALGS
from ..errors import KeyRingError
from ..keyring import Status
from . import context
from .output import emit
from .output import json_option


@click.group("clients")
def command():
    """Manage OAuth clients."""


def describe(client) -> dict:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": list(client.grant_types),
        "scope": client.scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "first_party": client.first_party,
        "audiences": list(client.audiences),
        "allowed_origins": list(client.allowed_origins),
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
    }


@command.command("create")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI (repeatable).")
@click.option("--post-logout-redirect-uri", "logout_uris", multiple=True, help="Exact post-logout URI (repeatable).")
@click.option("--grant-type", "grant_types", multiple=True, type=click.Choice(accounts.GRANT_TYPES))
@click.option("--scope", default="", help="Space-separated scopes the client may request.")
@click.option(
    "--audience",
    "--resource",
    "audiences",
    multiple=True,
    help="Audience of its access tokens (repeatable; the first is the default, others by RFC 8707 `resource`).",
)
@click.option(
    "--allowed-origin",
    "origins",
    multiple=True,
    help="Browser origin scheme://host[:port] that may call /token, /revoke and /userinfo (repeatable).",
)
@click.option("--public", is_flag=True, help="No secret; PKCE is required (SPAs, native apps).")
@click.option("--auth-method", type=click.Choice(accounts.AUTH_METHODS), default=None)
@click.option("--first-party", is_flag=True, help="Skip the consent page.")
@click.option(
    "--id-token-alg",
    type=click.Choice(SIGNING_ALGS),
    default=None,
    help="Algorithm of its ID tokens (default RS256); the key ring must have an active key for it.",
)
@json_option
def create(
    name,
    redirect_uris,
    logout_uris,
    grant_types,
    scope,
    audiences,
    origins,
    public,
    auth_method,
    first_party,
    id_token_alg,
    as_json,
):
    """Register a client; its secret is shown once."""
    client, secret = accounts.new_client(
        name,
        now=context.now(),
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=logout_uris,
        grant_types=grant_types,
        scope=scope,
        public=public,
        auth_method=auth_method,
        first_party=first_party,
        id_token_alg=id_token_alg or "RS256",
        allowed_origins=origins,
    )
    for audience in audiences:
        accounts.validate_audience(audience)
    if id_token_alg:
        _check_signing_key(id_token_alg)
    client = replace(client, audiences=tuple(dict.fromkeys(audiences)))
    store = context.store()
    try:
        store.create_client(client)
    finally:
        store.close()
    doc = {"client_id": client.client_id}
    if secret is not None:
        doc["client_secret"] = secret
    text = f"client_id: {client.client_id}" + (
        f"\nclient_secret: {secret}  (shown once: store it now)" if secret else ""
    )
    emit(doc, as_json, text)


def _check_signing_key(alg: str) -> None:
    """Refuse an ID-token algorithm the key ring cannot sign with yet: the client's logins would fail."""
    try:
        keyring = context.keyring()
        signing = {key.alg for key in keyring.keys() if key.status is Status.ACTIVE}
    except KeyRingError:
        signing = set()
    if alg not in signing:
        raise ValueError(f"no active {alg} key in the key ring: run `python -m authsvc keys rotate --alg {alg}` first")


@command.command("list")
@json_option
def list_clients(as_json):
    """List clients (never their secrets)."""
    store = context.store()
    try:
        emit([describe(c) for c in store.list_clients()], as_json)
    finally:
        store.close()


@command.command("delete")
@click.argument("client_id")
@json_option
def delete(client_id, as_json):
    """Delete a client, its codes, refresh tokens and consents; revoke its access tokens."""
    services = context.services()
    try:
        services.store.get_client(client_id)
        services.revocations.revoke_client(client_id)
        services.store.delete_client(client_id)
    finally:
        services.close()
    emit({"client_id": client_id, "deleted": True}, as_json, f"deleted {client_id}")


@command.command("rotate-secret")
@click.argument("client_id")
@json_option
def rotate_secret(client_id, as_json):
    """Replace a confidential client's secret; the old one stops working at once."""
    secret = accounts.new_client_secret()

    def rotate(client):
        if client.token_endpoint_auth_method == "none":
            raise ValueError(f"{client_id} is a public client: it has no secret")
        return replace(client, secret_hash=accounts.hash_client_secret(secret))

    store = context.store()
    try:
        store.update_client(client_id, rotate)
    finally:
        store.close()
    emit(
        {"client_id": client_id, "client_secret": secret},
        as_json,
        f"client_secret: {secret}  (shown once: store it now)",
    )

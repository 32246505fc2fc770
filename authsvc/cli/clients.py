"""``clients create | list | delete | rotate-secret``."""

import json
from dataclasses import replace

import click

from .. import accounts
from ..config import SIGNING_ALGS
from ..errors import KeyRingError
from ..events import security_event
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
        "dpop_bound": client.dpop_bound,
        "jwks_uri": client.jwks_uri,
        "jwks": json.loads(client.jwks) if client.jwks else None,
        "require_par": client.require_par,
        "backchannel_logout_uri": client.backchannel_logout_uri,
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
@click.option("--dpop-bound", is_flag=True, help="Every token request must carry a DPoP proof (RFC 9449).")
@click.option(
    "--jwks-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="private_key_jwt: a file holding the client's public JWK Set.",
)
@click.option("--jwks-uri", default=None, help="private_key_jwt: https URL where the client publishes its JWK Set.")
@click.option("--require-par", is_flag=True, help="Accept its authorization requests only through /par (RFC 9126).")
@click.option(
    "--backchannel-logout-uri",
    default=None,
    help="Where logout tokens are POSTed when a session the client holds ends (https; http on 127.0.0.1).",
)
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
    dpop_bound,
    jwks_file,
    jwks_uri,
    require_par,
    backchannel_logout_uri,
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
        jwks=_read_jwks_file(jwks_file) if jwks_file else None,
        jwks_uri=jwks_uri,
        backchannel_logout_uri=backchannel_logout_uri,
    )
    for audience in audiences:
        accounts.validate_audience(audience)
    if id_token_alg:
        _check_signing_key(id_token_alg)
    client = replace(client, audiences=tuple(dict.fromkeys(audiences)), dpop_bound=dpop_bound, require_par=require_par)
    store = context.store()
    try:
        store.create_client(client)
    finally:
        store.close()
    security_event("client.created", client_id=client.client_id, auth_method=client.token_endpoint_auth_method)
    doc = {"client_id": client.client_id}
    if secret is not None:
        doc["client_secret"] = secret
    text = f"client_id: {client.client_id}" + (
        f"\nclient_secret: {secret}  (shown once: store it now)" if secret else ""
    )
    emit(doc, as_json, text)


def _read_jwks_file(path: str) -> str:
    try:
        with open(path, "rb") as file:
            raw = file.read(accounts.MAX_JWKS_BYTES + 1)
    except OSError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from None
    if len(raw) > accounts.MAX_JWKS_BYTES:
        raise ValueError(f"{path} is larger than {accounts.MAX_JWKS_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None


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
    security_event("client.deleted", client_id=client_id)
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
        if client.token_endpoint_auth_method == "private_key_jwt":
            raise ValueError(f"{client_id} authenticates with private_key_jwt: it has no secret")
        return replace(client, secret_hash=accounts.hash_client_secret(secret))

    store = context.store()
    try:
        store.update_client(client_id, rotate)
    finally:
        store.close()
    security_event("client.secret_rotated", client_id=client_id)
    emit(
        {"client_id": client_id, "client_secret": secret},
        as_json,
        f"client_secret: {secret}  (shown once: store it now)",
    )

"""The client-credentials grant's common case, answered without Authlib's dispatch.

Services ask the token endpoint for a token many times a second, and in a
profile of that request Authlib's generic dispatch (request wrapping, grant
lookup, authentication-method loop, hooks) cost more than signing the token.
``plain_token_response`` answers the one shape that dominates: a confidential
client registered for ``client_secret_basic`` and the ``client_credentials``
grant, with the right secret, asking for a scope and resource it may have,
without DPoP.

It decides only success. Whenever anything is off (unknown client, wrong
secret, another authentication method, a scope or resource the client may not
have, a DPoP-bound client) it returns None and the request goes down the full
Authlib path, which produces the error, its status and its security event
exactly as before: there is one implementation of every error, and
client-credentials requests create no state, so trying here first changes
nothing for a request that fails. ``tests/web/test_token_path.py`` compares
both paths, request for request.
"""

from authlib.oauth2.base import OAuth2Error

from .. import accounts
from ..errors import NotFound
from .issuance import audience_for
from .issuance import client_credentials_scope

GRANT_TYPE = "client_credentials"
AUTH_METHOD = "client_secret_basic"
# The form parameters this path knows; a request with any other goes the full way.
PARAMETERS = frozenset({"grant_type", "scope", "resource"})


def plain_token_response(server, client_id: str, secret: str, params: dict[str, str]) -> dict | None:
    """Mint the token for a plain client-credentials request, or None to leave it to the full path.

    ``params`` are the form's parameters, each present once. Raises what the store
    and the key ring raise when they are unavailable.
    """
    if params.get("grant_type") != GRANT_TYPE or not params.keys() <= PARAMETERS:
        return None
    try:
        client = server.clients.get(client_id)
    except (NotFound, ValueError):
        return None
    if (
        client.token_endpoint_auth_method != AUTH_METHOD
        or GRANT_TYPE not in client.grant_types
        or client.dpop_bound
        or not accounts.check_client_secret(client, secret)
    ):
        return None
    services = server.services
    try:
        scope = client_credentials_scope(client, params.get("scope"))
        audience = audience_for(services.settings, client, params.get("resource"))
    except OAuth2Error:
        return None
    access_token, _ = services.tokens.mint_access_token(
        client_id=client.client_id, sub=client.client_id, scope=scope, audience=audience
    )
    # The full path's members, in its (sorted) order.
    return {
        "access_token": access_token,
        "expires_in": services.settings.access_token_ttl,
        "scope": scope,
        "token_type": "Bearer",
    }

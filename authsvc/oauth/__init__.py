"""The OAuth 2.0 / OpenID Connect protocol layer, on Authlib.

The only package that imports Authlib. It turns validated protocol requests
into calls on the services (store, key ring, token minter, revocations) and
never builds SQL or touches the key files itself.
"""

from .server import AuthorizationServer


def create_authorization_server(services) -> AuthorizationServer:
    return AuthorizationServer(services)

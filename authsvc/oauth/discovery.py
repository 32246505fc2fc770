"""Server metadata: OpenID Connect Discovery 1.0 and RFC 8414 in one document.

It lists only what is implemented, so a client library configures itself
from it and never tries a feature that is not there.
"""

from ..config import SIGNING_ALGS
from .claims import SCOPE_DESCRIPTIONS

PATHS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "userinfo_endpoint": "/userinfo",
    "jwks_uri": "/jwks.json",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/introspect",
    "end_session_endpoint": "/logout",
    "revocation_list_uri": "/revocations",
}


def metadata(settings, signing_algs) -> dict:
    """Return the discovery document for ``settings.issuer``.

    ``signing_algs`` are the algorithms the key ring has an active key for:
    an ID token can be signed only with one of them, so no other is offered.
    """
    issuer = settings.issuer
    doc = {"issuer": issuer}
    doc.update({name: issuer + path for name, path in PATHS.items()})
    auth_methods = ["client_secret_basic", "client_secret_post", "none"]
    doc.update(
        {
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [alg for alg in SIGNING_ALGS if alg in signing_algs],
            "scopes_supported": list(SCOPE_DESCRIPTIONS),
            "claims_supported": [
                "iss",
                "sub",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "sid",
                "preferred_username",
                "name",
                "email",
                "email_verified",
            ],
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_methods_supported": auth_methods[:2],
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login", "consent"],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
            "frontchannel_logout_supported": False,
            "backchannel_logout_supported": False,
            "access_token_signing_alg_values_supported": [settings.signing_alg],
        }
    )
    return doc

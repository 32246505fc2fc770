"""Server metadata: OpenID Connect Discovery 1.0 and RFC 8414 in one document.

It lists only what is implemented, so a client library configures itself
from it and never tries a feature that is not there.
"""

from ..accounts import CLIENT_ASSERTION_ALGS
from ..config import SIGNING_ALGS
from .claims import SCOPE_DESCRIPTIONS
from .dpop import ALGORITHMS as DPOP_ALGORITHMS

PATHS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "userinfo_endpoint": "/userinfo",
    "jwks_uri": "/jwks.json",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/introspect",
    "end_session_endpoint": "/logout",
    "revocation_list_uri": "/revocations",
    "pushed_authorization_request_endpoint": "/par",
    "device_authorization_endpoint": "/device_authorization",
}


def metadata(settings, signing_algs) -> dict:
    """Return the discovery document for ``settings.issuer``.

    ``signing_algs`` are the algorithms the key ring has an active key for:
    an ID token can be signed only with one of them, so no other is offered.
    """
    issuer = settings.issuer
    doc = {"issuer": issuer}
    doc.update({name: issuer + path for name, path in PATHS.items()})
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    doc.update(
        {
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": [
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:device_code",
            ],
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
            "introspection_endpoint_auth_methods_supported": auth_methods[:3],
            # private_key_jwt (RFC 7523): what a client assertion may be signed with.
            "token_endpoint_auth_signing_alg_values_supported": list(CLIENT_ASSERTION_ALGS),
            "revocation_endpoint_auth_signing_alg_values_supported": list(CLIENT_ASSERTION_ALGS),
            "introspection_endpoint_auth_signing_alg_values_supported": list(CLIENT_ASSERTION_ALGS),
            # RFC 9126 §5: PAR is offered to every client, required only of those registered --require-par.
            "require_pushed_authorization_requests": False,
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login", "consent"],
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "authorization_response_iss_parameter_supported": True,
            "frontchannel_logout_supported": False,
            "backchannel_logout_supported": True,
            "backchannel_logout_session_supported": True,
            "access_token_signing_alg_values_supported": [settings.signing_alg],
            # RFC 9449 §5.1: the algorithms a DPoP proof may be signed with.
            "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
        }
    )
    return doc

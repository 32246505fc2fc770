"""The Authlib names the web layer needs, re-exported so only ``authsvc.oauth`` imports Authlib.

Views catch ``OAuth2Error`` and raise the protocol's own error classes (never
hand-built JSON); ``add_params_to_uri`` builds the error redirects of the
authorization endpoint.
"""

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.core.errors import ConsentRequiredError
from authlib.oidc.core.errors import LoginRequiredError

__all__ = [
    "ConsentRequiredError",
    "InvalidRequestError",
    "LoginRequiredError",
    "OAuth2Error",
    "add_params_to_uri",
]

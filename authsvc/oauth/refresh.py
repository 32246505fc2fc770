"""Refresh-token grant with rotation on every use.

https://www.rfc-editor.org/rfc/rfc9700#section-4.14.2 — a refresh token is
spent by one atomic compare-and-set in the shared store. Presenting the token
just spent again within the grace window (two tabs, a retried request)
returns the very same successor response; presenting it later means two
parties hold it, so the whole family and its access tokens are revoked.
"""

import logging

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError

from ..errors import NotFound
from .grants import AUTH_METHODS
from .grants import rotate_family_user
from .issuance import IssuesTokens
from .issuance import open_response
from .issuance import seal_response
from .issuance import secret_hash
from .models import RefreshTokenModel

log = logging.getLogger(__name__)


class RefreshTokenGrant(IssuesTokens, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        services = self.server.services
        try:
            record = services.store.get_refresh_token(secret_hash(refresh_token))
        except (NotFound, ValueError):
            return None
        return RefreshTokenModel(record, services.clock)

    def authenticate_user(self, refresh_token):
        return rotate_family_user(self.server, refresh_token.record)

    def revoke_old_credential(self, refresh_token):
        """Nothing to do: spending is the compare-and-set in ``create_token_response``."""

    def create_token_response(self):
        services = self.server.services
        model = self.request.refresh_token
        record = model.record
        presented = self.request.form.get("refresh_token")
        if model.is_revoked() or model.is_expired():
            raise InvalidGrantError("The refresh token is no longer valid.")
        if record.spent_at is not None:
            return 200, self._replay(presented, record), self.TOKEN_RESPONSE_HEADER
        user = self.authenticate_user(model)
        if user is None:
            raise InvalidGrantError("The user or client of this refresh token is no longer active.")
        self.request.user = user
        token = self.issue_token(user, model)
        if "openid" in token["scope"].split():
            token["id_token"] = self.server.mint_id_token(
                self.request.client, user, token["scope"], record.auth_time, record.sid, None, token
            )
        successor = self.request.issued.refresh
        if services.store.spend_refresh_token(
            record.token_hash, services.clock(), successor, seal_response(presented, token)
        ):
            return 200, token, self.TOKEN_RESPONSE_HEADER
        # Another request spent it first (a race between two honest tabs, or theft): decide as a replay.
        return (
            200,
            self._replay(presented, services.store.get_refresh_token(record.token_hash)),
            self.TOKEN_RESPONSE_HEADER,
        )

    def _replay(self, presented, record):
        services = self.server.services
        if record.revoked_at is None and record.spent_at is not None and record.successor_blob:
            if services.clock() - record.spent_at <= services.settings.refresh_grace:
                response = open_response(presented, record.successor_blob)
                if response is not None:
                    return response
        log.warning("spent refresh token presented again; revoking its family (client %s)", record.client_id)
        services.revocations.revoke_family(record.family_id)
        raise InvalidGrantError("The refresh token was already used.")

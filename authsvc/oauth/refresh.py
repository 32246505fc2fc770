"""Refresh-token grant with rotation on every use.

https://www.rfc-editor.org/rfc/rfc9700#section-4.14.2 — a refresh token is
spent by one atomic compare-and-set in the shared store. Presenting the token
just spent again (two tabs, a retried request) returns the very same
successor response, but only within the grace window, only to the client the
token was issued to, and only while that successor is unspent. Any other
replay means two parties hold the token, so the whole family and its access
tokens are revoked at once. Every grace replay and every revocation is a
security event; none names the token itself.
"""

import logging

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError

from ..errors import NotFound
from ..events import security_event
from .dpop import check_refresh_binding
from .grants import AUTH_METHODS
from .grants import rotate_family_user
from .issuance import IssuesTokens
from .issuance import open_response
from .issuance import seal_response
from .issuance import secret_hash
from .models import RefreshTokenModel


def _who(record) -> dict:
    """The fields every refresh event carries: identifiers, never the token."""
    return {"client_id": record.client_id, "sub": record.sub, "family_id": record.family_id}


class RefreshTokenGrant(IssuesTokens, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        services = self.server.services
        try:
            record = services.store.get_refresh_token(secret_hash(refresh_token))
        except (NotFound, ValueError):
            return None
        model = RefreshTokenModel(record, services.clock)
        # Authlib has authenticated the client by now; a token presented by
        # another client is refused (invalid_grant) and spends nothing. This
        # binds every use, grace replays included, to the issuing client.
        client = self.request.client
        if client is not None and not model.check_client(client):
            security_event(
                "refresh.client_mismatch", logging.WARNING, presenting_client_id=client.get_client_id(), **_who(record)
            )
            return None
        return model

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
        # RFC 9449 §5: a bound token (a public client's) needs a proof by its key, grace replays included.
        check_refresh_binding(record, self.request)
        # A grace replay hands out tokens too: it passes the same user and session checks.
        user = self.authenticate_user(model)
        if user is None:
            raise InvalidGrantError("The user or client of this refresh token is no longer active.")
        if record.spent_at is not None:
            return 200, self._replay(presented, record), self.TOKEN_RESPONSE_HEADER
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
        return 200, self._replay(presented, record), self.TOKEN_RESPONSE_HEADER

    def _replay(self, presented, record):
        """Answer a spent token: its successor response within the grace, else revoke the family."""
        services = self.server.services
        # The store judges the spent token and its successor in one statement,
        # so concurrent replays on any instance see the successor's spend alike.
        replay = services.store.replay_refresh_token(
            record.token_hash, spent_since=services.clock() - services.settings.refresh_grace
        )
        if replay.successor_blob is not None:
            response = open_response(presented, replay.successor_blob)
            if response is not None:
                security_event("refresh.grace_replay", **_who(record))
                return response
        security_event("refresh.reuse_detected", logging.WARNING, reason=replay.refused or "unreadable", **_who(record))
        revoked = services.revocations.revoke_family(record.family_id)
        security_event("refresh.family_revoked", logging.WARNING, access_tokens=len(revoked), **_who(record))
        raise InvalidGrantError("The refresh token was already used.")

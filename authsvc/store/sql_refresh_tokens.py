"""Refresh tokens: create, get, spend exactly once (rotation), judge a replay, and revoke in bulk."""

from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import exc

from ..errors import AlreadyExists
from ..errors import NotFound
from .records import RefreshToken
from .schema import refresh_tokens as tokens
from .sql_base import check_record
from .sql_base import check_text
from .sql_base import is_foreign_key_error
from .sql_base import reading
from .sql_base import row_values
from .sql_base import to_record
from .sql_base import writing


class GraceReplay(NamedTuple):
    """What a spent refresh token presented again may still get."""

    # The sealed successor response, when the grace holds; else None.
    successor_blob: bytes | None
    # Why the grace does not hold: "unknown", "unspent", "revoked", "grace_over", "successor_used".
    refused: str | None = None


class RefreshTokensMixin:
    _engine: sa.Engine

    def create_refresh_token(self, token: RefreshToken) -> None:
        """Insert a token; NotFound for an unknown client, AlreadyExists for a reused hash."""
        check_record(token)
        try:
            with writing(self._engine) as conn:
                conn.execute(sa.insert(tokens).values(row_values(token)))
        except exc.IntegrityError as error:
            if is_foreign_key_error(error):
                raise NotFound("client not found") from error
            raise AlreadyExists("refresh token exists already") from error

    def get_refresh_token(self, token_hash: str) -> RefreshToken:
        """Return the token; NotFound otherwise."""
        check_text(token_hash=token_hash)
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.token_hash == token_hash)).first()
        if row is None:
            raise NotFound("refresh token not found")
        return to_record(RefreshToken, row)

    def spend_refresh_token(self, token_hash: str, now: float, successor: RefreshToken, successor_blob: bytes) -> bool:
        """Spend a live token and insert its successor in one transaction.

        True for the one caller that wins. False when the token is unknown,
        spent or revoked: nothing is written then, and the caller decides
        whether that is a reuse to punish. The spent row keeps the sealed
        response and the successor's hash, for ``replay_refresh_token``.
        """
        check_text(token_hash=token_hash)
        check_record(successor)
        spend = (
            sa.update(tokens)
            .where(
                tokens.c.token_hash == token_hash,
                tokens.c.spent_at.is_(None),
                tokens.c.revoked_at.is_(None),
            )
            .values(spent_at=now, successor_blob=successor_blob, successor_hash=successor.token_hash)
        )
        try:
            with writing(self._engine) as conn:
                if conn.execute(spend).rowcount != 1:
                    # Nothing was written: committing equals rolling back.
                    return False
                conn.execute(sa.insert(tokens).values(row_values(successor)))
        except exc.IntegrityError as error:
            if is_foreign_key_error(error):
                raise NotFound("client not found") from error
            raise AlreadyExists("successor refresh token exists already") from error
        return True

    def replay_refresh_token(self, token_hash: str, spent_since: float) -> GraceReplay:
        """Judge a spent token presented again: its sealed successor response, or why not.

        The grace holds while the token was spent at or after ``spent_since``,
        neither it nor its successor is revoked, and the successor is still
        unspent: once the successor was used, the token is in two hands
        (RFC 9700 §4.14.2). One statement reads both rows, so the answer is
        one committed state: a replay never hands out a successor whose spend
        had already committed, on any instance.
        """
        check_text(token_hash=token_hash)
        spent, successor = tokens.alias("spent"), tokens.alias("successor")
        query = (
            sa.select(
                spent.c.spent_at,
                spent.c.revoked_at,
                spent.c.successor_blob,
                successor.c.token_hash.label("successor_hash"),
                successor.c.spent_at.label("successor_spent_at"),
                successor.c.revoked_at.label("successor_revoked_at"),
            )
            .select_from(spent.outerjoin(successor, successor.c.token_hash == spent.c.successor_hash))
            .where(spent.c.token_hash == token_hash)
        )
        with reading(self._engine) as conn:
            row = conn.execute(query).first()
        if row is None:
            return GraceReplay(None, "unknown")
        if row.revoked_at is not None:
            return GraceReplay(None, "revoked")
        if row.spent_at is None:
            return GraceReplay(None, "unspent")
        # A successor that is missing (spent before successors were recorded) counts as revoked.
        if row.successor_hash is None or row.successor_revoked_at is not None:
            return GraceReplay(None, "revoked")
        if row.spent_at < spent_since:
            return GraceReplay(None, "grace_over")
        if row.successor_spent_at is not None:
            return GraceReplay(None, "successor_used")
        return GraceReplay(row.successor_blob)

    def revoke_family(self, family_id: str, now: float, *, live_after: float | None = None) -> list[tuple[str, float]]:
        """Revoke every token of a family; return its (access_jti, access_exp) expiring after live_after (or now)."""
        check_text(family_id=family_id)
        return self._revoke(tokens.c.family_id == family_id, now, live_after)

    def revoke_refresh_tokens(
        self,
        now: float,
        *,
        sub: str | None = None,
        client_id: str | None = None,
        sid: str | None = None,
        live_after: float | None = None,
    ) -> list[tuple[str, float]]:
        """Revoke the tokens matching every given criterion; return their access tokens expiring after live_after."""
        check_text(sub=sub, client_id=client_id, sid=sid)
        given = {"sub": sub, "client_id": client_id, "sid": sid}
        criteria = [tokens.c[name] == value for name, value in given.items() if value is not None]
        if not criteria:
            # An empty filter would revoke every token of every user.
            raise ValueError("revoke_refresh_tokens needs sub, client_id or sid")
        return self._revoke(sa.and_(*criteria), now, live_after)

    def _revoke(
        self, where: sa.ColumnElement[bool], now: float, live_after: float | None = None
    ) -> list[tuple[str, float]]:
        revoke = sa.update(tokens).where(where, tokens.c.revoked_at.is_(None)).values(revoked_at=now)
        # Verifiers accept a token a little past exp (their leeway): callers may ask for those too.
        live_after = now if live_after is None else live_after
        live = (
            sa.select(tokens.c.access_jti, tokens.c.access_exp)
            .where(where, tokens.c.access_jti.is_not(None), tokens.c.access_exp > live_after)
            .order_by(tokens.c.issued_at, tokens.c.access_jti)
        )
        with writing(self._engine) as conn:
            # Each PostgreSQL statement takes a fresh snapshot: repeating the UPDATE until it
            # finds nothing catches a successor that a refresh committed while this one waited
            # for the spent token's row lock (refresh-vs-revoke, Keycloak #51312).
            while conn.execute(revoke).rowcount:
                pass
            return [(row.access_jti, row.access_exp) for row in conn.execute(live)]

"""Authorization codes: create, consume exactly once, remember what was issued."""

import sqlalchemy as sa
from sqlalchemy import exc

from ..errors import AlreadyExists
from ..errors import NotFound
from .records import AuthorizationCode
from .schema import authorization_codes as codes
from .sql_base import check_record
from .sql_base import check_text
from .sql_base import is_foreign_key_error
from .sql_base import row_values
from .sql_base import to_record
from .sql_base import writing


class CodesMixin:
    _engine: sa.Engine

    def create_code(self, code: AuthorizationCode) -> None:
        """Insert a code; NotFound for an unknown client, AlreadyExists for a reused hash."""
        check_record(code)
        try:
            with writing(self._engine) as conn:
                conn.execute(sa.insert(codes).values(row_values(code)))
        except exc.IntegrityError as error:
            if is_foreign_key_error(error):
                raise NotFound("client not found") from error
            raise AlreadyExists("authorization code exists already") from error

    def consume_code(
        self,
        code_hash: str,
        now: float,
        *,
        issue: tuple[str, float, str | None] | None = None,
        dpop_jkt: str | None = None,
    ) -> tuple[AuthorizationCode | None, bool]:
        """Mark a code used; return (record, True) for the one caller that wins.

        A code used before gives (stored record, False) so the caller can
        revoke what the first exchange issued (RFC 9700 §4.5); an unknown
        code, or one that expired unused, gives (None, False). ``issue`` =
        (jti, exp, family_id) records what the winner is about to issue in
        the same UPDATE, so a replay racing the exchange can revoke it too.

        ``dpop_jkt`` is the key thumbprint of the token request's DPoP proof
        (None without one). A code bound to another key (RFC 9449 §10) is
        not used up: it gives (record with ``used_at`` None, False) and stays
        usable by the holder of its key.
        """
        check_text(code_hash=code_hash, dpop_jkt=dpop_jkt)
        values = {"used_at": now}
        if issue is not None:
            jti, exp, family_id = issue
            check_text(jti=jti, family_id=family_id)
            values.update(issued_jti=jti, issued_exp=exp, issued_family=family_id)
        # One conditional UPDATE is the whole race: PostgreSQL re-checks the
        # WHERE after waiting on the row lock, SQLite holds the write lock.
        unbound = codes.c.dpop_jkt.is_(None)
        same_key = unbound if dpop_jkt is None else sa.or_(unbound, codes.c.dpop_jkt == dpop_jkt)
        won = (
            sa.update(codes)
            .where(codes.c.code_hash == code_hash, codes.c.used_at.is_(None), codes.c.expires_at > now, same_key)
            .values(**values)
            .returning(*codes.c)
        )
        with writing(self._engine) as conn:
            row = conn.execute(won).first()
            if row is not None:
                return to_record(AuthorizationCode, row), True
            row = conn.execute(sa.select(codes).where(codes.c.code_hash == code_hash)).first()
        if row is None or (row.used_at is None and row.expires_at <= now):
            return None, False
        # Used before, or unused but bound to another DPoP key.
        return to_record(AuthorizationCode, row), False

    def record_code_issue(self, code_hash: str, jti: str, exp: float, family_id: str | None) -> None:
        """Remember the access token and refresh family a code's exchange issued."""
        check_text(code_hash=code_hash, jti=jti, family_id=family_id)
        issue = (
            sa.update(codes)
            .where(codes.c.code_hash == code_hash)
            .values(issued_jti=jti, issued_exp=exp, issued_family=family_id)
        )
        with writing(self._engine) as conn:
            if conn.execute(issue).rowcount == 0:
                raise NotFound("authorization code not found")

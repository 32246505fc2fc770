"""One-time identifiers (DPoP proof ``jti``, client assertion ``jti``): each accepted once.

Every instance writes to the same table, so a value replayed to another instance is
refused as surely as one replayed to this one. A row lives until ``expires_at``, the end
of the window in which its value could be accepted at all; after that the value is
refused by its own time check and the row can go (``purge_expired``).
"""

import sqlalchemy as sa

from .schema import used_jtis
from .sql_base import check_text
from .sql_base import upsert
from .sql_base import writing

MAX_KEY_LENGTH = 512


class UsedJtisMixin:
    _engine: sa.Engine

    def use_once(self, key: str, expires_at: float, now: float) -> bool:
        """Record ``key`` as used until ``expires_at``; False when it is in use already.

        One statement: the insert wins, or the conflict updates a row only when
        that row has expired. PostgreSQL's unique index (and SQLite's write lock)
        orders concurrent callers, so exactly one of them gets True.
        """
        check_text(key=key)
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
            raise ValueError(f"key must be 1 to {MAX_KEY_LENGTH} characters")
        with writing(self._engine) as conn:
            insert = upsert(conn, used_jtis).values(key=key, expires_at=expires_at)
            claim = insert.on_conflict_do_update(
                index_elements=[used_jtis.c.key],
                set_={"expires_at": expires_at},
                where=used_jtis.c.expires_at <= now,
            )
            # RETURNING rather than rowcount: drivers disagree on the count of an upsert.
            return conn.execute(claim.returning(used_jtis.c.key)).first() is not None

    def purge_used_jtis(self, conn: sa.Connection, now: float) -> int:
        """Delete the identifiers whose window is over (called inside ``purge_expired``)."""
        return conn.execute(sa.delete(used_jtis).where(used_jtis.c.expires_at <= now)).rowcount

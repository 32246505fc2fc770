"""The back-channel logout outbox: rows written with a logout, sent by whichever instance claims them.

A sender claims one due row at a time by setting ``claimed_until`` (a lease)
and counting the attempt; no other instance takes the row until the lease
runs out. On PostgreSQL the claim reads with ``FOR UPDATE SKIP LOCKED``, so
instances claiming at once never wait on each other; SQLite serialises
writers (BEGIN IMMEDIATE) and gets the same result. The ``claimed_until``
value a sender set is its fencing token: the outcome is recorded only while
the row still carries it, so a sender whose lease ran out (and whose row
another instance took over) changes nothing.
"""

import sqlalchemy as sa

from .records import LogoutDelivery
from .schema import logout_outbox
from .sql_base import check_text
from .sql_base import reading
from .sql_base import to_record
from .sql_base import writing

# Long after any retry: rows delivered or given up on are kept a day for the operator, then purged.
OUTBOX_RETENTION = 86400
MAX_ERROR_CHARS = 200


class LogoutOutboxMixin:
    _engine: sa.Engine

    def claim_logout_delivery(
        self, now: float, lease: float, *, max_attempts: int, not_before: float
    ) -> LogoutDelivery | None:
        """Claim the next due delivery for ``lease`` seconds and count the attempt; None when nothing is due.

        Due: not delivered, fewer than ``max_attempts`` tries, created after
        ``not_before``, its retry time reached, and no live claim on it.
        """
        box = logout_outbox.c
        due = sa.and_(
            box.delivered_at.is_(None),
            box.attempts < max_attempts,
            box.created_at > not_before,
            box.next_attempt_at <= now,
            sa.or_(box.claimed_until.is_(None), box.claimed_until <= now),
        )
        pick = sa.select(box.id).where(due).order_by(box.next_attempt_at, box.id).limit(1)
        # A plain read first: an idle outbox costs no write lock (SQLite) and no row lock.
        with reading(self._engine) as conn:
            if conn.execute(pick).first() is None:
                return None
        with writing(self._engine) as conn:
            found = conn.execute(pick.with_for_update(skip_locked=True)).first()
            if found is None:
                return None
            row = conn.execute(
                sa.update(logout_outbox)
                .where(box.id == found.id, due)
                .values(claimed_until=now + lease, attempts=box.attempts + 1)
                .returning(*logout_outbox.c)
            ).first()
        return None if row is None else to_record(LogoutDelivery, row)

    def finish_logout_delivery(
        self,
        delivery: LogoutDelivery,
        now: float,
        *,
        delivered: bool,
        retry_at: float | None = None,
        error: str | None = None,
    ) -> bool:
        """Record how a claimed attempt ended; False when the claim was lost (lease over, another took it)."""
        check_text(error=error)
        box = logout_outbox.c
        values = {"claimed_until": None}
        if delivered:
            values.update(delivered_at=now, last_error=None)
        else:
            values.update(last_error=(error or "")[:MAX_ERROR_CHARS])
            if retry_at is not None:
                values["next_attempt_at"] = retry_at
        mine = sa.and_(box.id == delivery.id, box.claimed_until == delivery.claimed_until, box.delivered_at.is_(None))
        with writing(self._engine) as conn:
            return conn.execute(sa.update(logout_outbox).where(mine).values(values)).rowcount == 1

    def list_logout_deliveries(self, client_id: str | None = None) -> list[LogoutDelivery]:
        """Return the outbox (one client's part when ``client_id`` is given), oldest first."""
        check_text(client_id=client_id)
        query = sa.select(logout_outbox).order_by(logout_outbox.c.id)
        if client_id is not None:
            query = query.where(logout_outbox.c.client_id == client_id)
        with reading(self._engine) as conn:
            return [to_record(LogoutDelivery, row) for row in conn.execute(query)]

    def purge_logout_outbox(self, conn: sa.Connection, now: float) -> int:
        """Delete rows older than the retention, delivered or given up on by then (inside ``purge_expired``)."""
        return conn.execute(
            sa.delete(logout_outbox).where(logout_outbox.c.created_at < now - OUTBOX_RETENTION)
        ).rowcount

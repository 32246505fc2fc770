"""Browser sessions, the clients each one was issued tokens to, and ending them.

The signed cookie stays the credential and the revocation list says whether a
session was ended; these rows add what a person or an app needs to know:
which browsers are signed in (the account page), and which clients hold a
session (who gets a back-channel logout token when it ends). Ending a session
and queueing its logout tokens is one transaction, so a logout is either
queued for every client of the session or for none.
"""

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy import exc

from ..errors import NotFound
from .records import BrowserSession
from .records import LogoutDelivery
from .schema import clients
from .schema import logout_outbox
from .schema import session_clients
from .schema import sessions
from .sql_base import check_record
from .sql_base import check_text
from .sql_base import is_foreign_key_error
from .sql_base import reading
from .sql_base import row_values
from .sql_base import to_record
from .sql_base import upsert
from .sql_base import writing

# An ended session's row stays this long, so a second logout of it (another tab,
# an RP's id_token_hint) is recognised and queues no second round of logout tokens.
ENDED_RETENTION = 3600

# (sid, sub or None) -> the fixed claims of one logout token, as stored in the outbox.
LogoutClaims = Callable[[str, str | None], str]


class SessionsMixin:
    _engine: sa.Engine

    def create_session(self, session: BrowserSession) -> None:
        """Record a browser session that just signed in."""
        check_record(session)
        with writing(self._engine) as conn:
            conn.execute(sa.insert(sessions).values(row_values(session)))

    def get_session(self, sid: str) -> BrowserSession:
        """Return the session, ended or not; NotFound otherwise."""
        check_text(sid=sid)
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(sessions).where(sessions.c.sid == sid)).first()
        if row is None:
            raise NotFound("session not found")
        return to_record(BrowserSession, row)

    def list_sessions(self, sub: str, now: float) -> list[BrowserSession]:
        """Return the user's sessions that are neither ended nor expired, most recently used first."""
        check_text(sub=sub)
        query = (
            sa.select(sessions)
            .where(sessions.c.sub == sub, sessions.c.ended_at.is_(None), sessions.c.expires_at > now)
            .order_by(sessions.c.last_seen_at.desc(), sessions.c.sid)
        )
        with reading(self._engine) as conn:
            return [to_record(BrowserSession, row) for row in conn.execute(query)]

    def record_session_client(self, sid: str, client_id: str, now: float) -> None:
        """Note that ``client_id`` was issued a code in session ``sid`` (idempotent); NotFound for an unknown client."""
        check_text(sid=sid, client_id=client_id)
        try:
            with writing(self._engine) as conn:
                insert = upsert(conn, session_clients).values(sid=sid, client_id=client_id, first_at=now)
                conn.execute(insert.on_conflict_do_nothing(index_elements=["sid", "client_id"]))
                conn.execute(sa.update(sessions).where(sessions.c.sid == sid).values(last_seen_at=now))
        except exc.IntegrityError as error:
            if is_foreign_key_error(error):
                raise NotFound("client not found") from error
            raise

    def end_sessions(
        self, now: float, logout_claims: LogoutClaims, *, sid: str | None = None, sub: str | None = None
    ) -> list[LogoutDelivery]:
        """End one session (``sid``) or every session of a user (``sub``) and queue their logout tokens.

        Each client the session was issued tokens to, and that registered a
        back-channel logout URI, gets one outbox row. The conditional UPDATE
        decides which call ends a session, so two logouts racing each other
        queue its tokens once. A ``sid`` without a row (a session that began
        before sessions were recorded) is still looked up in session_clients.
        """
        check_text(sid=sid, sub=sub)
        if (sid is None) == (sub is None):
            raise ValueError("end_sessions needs exactly one of sid or sub")
        with writing(self._engine) as conn:
            open_ = sessions.c.ended_at.is_(None)
            if sid is not None:
                ended = conn.execute(
                    sa.update(sessions)
                    .where(sessions.c.sid == sid, open_)
                    .values(ended_at=now)
                    .returning(sessions.c.sub)
                ).first()
                if ended is None and conn.execute(sa.select(sessions.c.sid).where(sessions.c.sid == sid)).first():
                    return []  # ended before; its logout tokens were queued then
                targets = {sid: ended.sub if ended else None}
            else:
                rows = conn.execute(
                    sa.update(sessions)
                    .where(sessions.c.sub == sub, open_)
                    .values(ended_at=now)
                    .returning(sessions.c.sid, sessions.c.sub)
                ).all()
                targets = {row.sid: row.sub for row in rows}
            if not targets:
                return []
            holders = conn.execute(
                sa.select(session_clients.c.sid, clients.c.client_id, clients.c.backchannel_logout_uri)
                .join(clients, clients.c.client_id == session_clients.c.client_id)
                .where(session_clients.c.sid.in_(targets), clients.c.backchannel_logout_uri.is_not(None))
                .order_by(session_clients.c.sid, clients.c.client_id)
            ).all()
            queued = []
            for holder in holders:
                values = {
                    "client_id": holder.client_id,
                    "uri": holder.backchannel_logout_uri,
                    "logout_claims": logout_claims(holder.sid, targets[holder.sid]),
                    "created_at": now,
                    "next_attempt_at": now,
                    "attempts": 0,
                }
                new_id = conn.execute(
                    sa.insert(logout_outbox).values(values).returning(logout_outbox.c.id)
                ).scalar_one()
                queued.append(LogoutDelivery(id=new_id, **values))
        return queued

    def purge_sessions(self, conn: sa.Connection, now: float) -> int:
        """Delete expired sessions, sessions ended a while ago, and their clients (inside ``purge_expired``)."""
        gone = sa.or_(sessions.c.expires_at <= now, sessions.c.ended_at < now - ENDED_RETENTION)
        deleted = conn.execute(sa.delete(sessions).where(gone)).rowcount
        # Also the clients of sessions that never had a row (begun before sessions were recorded).
        orphaned = session_clients.c.sid.not_in(sa.select(sessions.c.sid).scalar_subquery())
        return deleted + conn.execute(sa.delete(session_clients).where(orphaned)).rowcount

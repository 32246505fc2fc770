"""Device authorization grants (RFC 8628): create, decide by user code, poll, consume once.

Every change is one conditional UPDATE, so instances racing on the same row
agree: PostgreSQL re-checks the WHERE after waiting on the row lock, SQLite
holds the write lock for the whole transaction.
"""

import sqlalchemy as sa
from sqlalchemy import exc

from ..errors import AlreadyExists
from ..errors import NotFound
from .records import DeviceCode
from .schema import device_codes as devices
from .sql_base import check_record
from .sql_base import check_text
from .sql_base import is_foreign_key_error
from .sql_base import reading
from .sql_base import row_values
from .sql_base import to_record
from .sql_base import writing

# RFC 8628 §3.5: each too-early poll raises the interval by 5 s, for that and every later poll.
SLOW_DOWN_STEP = 5
# An expired grant is kept this long, so a late poll hears expired_token rather than invalid_grant.
DEVICE_CODE_RETENTION = 3600


class DeviceCodesMixin:
    _engine: sa.Engine

    def create_device_code(self, record: DeviceCode) -> None:
        """Insert a grant; NotFound for an unknown client, AlreadyExists when its user code is taken."""
        check_record(record)
        try:
            with writing(self._engine) as conn:
                conn.execute(sa.insert(devices).values(row_values(record)))
        except exc.IntegrityError as error:
            if is_foreign_key_error(error):
                raise NotFound("client not found") from error
            raise AlreadyExists("user code or device code exists already") from error

    def get_device_code_by_user_code(self, user_code: str) -> DeviceCode:
        """Return the grant a user code names, whatever its status; NotFound otherwise."""
        check_text(user_code=user_code)
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(devices).where(devices.c.user_code == user_code)).first()
        if row is None:
            raise NotFound("device code not found")
        return to_record(DeviceCode, row)

    def decide_device_code(
        self, user_code: str, now: float, *, approved: bool, sub: str, auth_time: float, sid: str | None
    ) -> DeviceCode | None:
        """Approve or deny a pending, unexpired grant for ``sub``; None when it is not (any more) pending.

        Only the first decision counts: a second tab, or a decision racing the
        expiry, gets None and changes nothing.
        """
        check_text(user_code=user_code, sub=sub, sid=sid)
        decide = (
            sa.update(devices)
            .where(devices.c.user_code == user_code, devices.c.status == "pending", devices.c.expires_at > now)
            .values(status="approved" if approved else "denied", sub=sub, auth_time=auth_time, sid=sid)
            .returning(*devices.c)
        )
        with writing(self._engine) as conn:
            row = conn.execute(decide).first()
        return None if row is None else to_record(DeviceCode, row)

    def poll_device_code(self, device_code_hash: str, client_id: str, now: float) -> tuple[DeviceCode | None, bool]:
        """Record a poll by ``client_id``; return (record, too_early), record None when unknown.

        A pending grant polled sooner than its interval after the last poll
        that kept to it is ``too_early`` (RFC 8628 §3.5 ``slow_down``): its
        interval grows by ``SLOW_DOWN_STEP`` and ``last_polled_at`` stays, so
        the wait runs from the last poll that kept to the interval. The
        first UPDATE records a poll that kept to it, the second punishes one
        that did not; each re-checks its condition on the locked row, so two
        polls racing cannot both pass.
        """
        check_text(device_code_hash=device_code_hash, client_id=client_id)
        c = devices.c
        mine = sa.and_(c.device_code_hash == device_code_hash, c.client_id == client_id)
        early = sa.and_(c.status == "pending", c.last_polled_at.is_not(None), c.last_polled_at + c.interval > now)
        on_time = sa.update(devices).where(mine, c.expires_at > now, sa.not_(early)).values(last_polled_at=now)
        slow_down = (
            sa.update(devices).where(mine, c.expires_at > now, early).values(interval=c.interval + SLOW_DOWN_STEP)
        )
        with writing(self._engine) as conn:
            row = conn.execute(on_time.returning(*c)).first()
            if row is not None:
                return to_record(DeviceCode, row), False
            row = conn.execute(slow_down.returning(*c)).first()
            if row is not None:
                return to_record(DeviceCode, row), True
            # Expired, unknown or another client's: read it without touching it.
            row = conn.execute(sa.select(devices).where(mine)).first()
        return (None if row is None else to_record(DeviceCode, row)), False

    def consume_device_code(self, device_code_hash: str, now: float) -> DeviceCode | None:
        """Turn an approved, unexpired grant into a consumed one; the record for the one caller that wins."""
        check_text(device_code_hash=device_code_hash)
        consume = (
            sa.update(devices)
            .where(
                devices.c.device_code_hash == device_code_hash,
                devices.c.status == "approved",
                devices.c.expires_at > now,
            )
            .values(status="consumed")
            .returning(*devices.c)
        )
        with writing(self._engine) as conn:
            row = conn.execute(consume).first()
        return None if row is None else to_record(DeviceCode, row)

    def purge_device_codes(self, conn: sa.Connection, now: float) -> int:
        """Delete grants past their retention, inside ``purge_expired``'s transaction."""
        return conn.execute(sa.delete(devices).where(devices.c.expires_at < now - DEVICE_CODE_RETENTION)).rowcount

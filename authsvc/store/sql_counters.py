"""Moving-window rate-limit entries: the state every instance shares through the database.

One row per key holds the times of the key's most recent accepted attempts,
newest first and at most ``limit`` of them: the same shape and the same rule
as the ``limits`` library's Redis storage (a list, LPUSH + LTRIM), so
``authsvc.ratelimit`` runs one strategy on either backend.
"""

import json

import sqlalchemy as sa

from .schema import counters
from .sql_base import check_text
from .sql_base import reading
from .sql_base import upsert
from .sql_base import writing


class CountersMixin:
    _engine: sa.Engine

    def acquire_entry(self, key: str, limit: int, expiry: int, now: float, amount: int = 1) -> bool:
        """Record ``amount`` attempts at ``now`` unless that would put more than ``limit`` in the last ``expiry`` s.

        Check and record are one transaction holding the key's row lock
        (PostgreSQL) or the database write lock (SQLite), so parallel attempts
        are ordered and never more than ``limit`` are accepted.
        """
        _check(key, limit, expiry)
        if amount > limit:
            return False
        with writing(self._engine) as conn:
            new_row = upsert(conn, counters).values(key=key, entries="[]", expires_at=now)
            conn.execute(new_row.on_conflict_do_nothing(index_elements=[counters.c.key]))
            query = sa.select(counters.c.entries).where(counters.c.key == key).with_for_update()
            entries = _entries(conn.execute(query).scalar_one())
            if len(entries) > limit - amount and entries[limit - amount] >= now - expiry:
                return False
            entries = ([now] * amount + entries)[:limit]
            conn.execute(
                sa.update(counters)
                .where(counters.c.key == key)
                # The window includes its edge (>=), so the row outlives it by a second.
                .values(entries=json.dumps(entries), expires_at=max(entries) + expiry + 1)
            )
        return True

    def moving_window(self, key: str, limit: int, expiry: int, now: float) -> tuple[float, int]:
        """Return (time of the oldest attempt still in the window, attempts in the window); (now, 0) if none."""
        _check(key, limit, expiry)
        with reading(self._engine) as conn:
            raw = conn.execute(sa.select(counters.c.entries).where(counters.c.key == key)).scalar()
        recent = [at for at in _entries(raw)[:limit] if at >= now - expiry]
        if not recent:
            return now, 0
        return min(recent), len(recent)

    def clear_entries(self, key: str) -> None:
        """Forget one key's attempts: that exact key, never a pattern."""
        check_text(key=key)
        with writing(self._engine) as conn:
            conn.execute(sa.delete(counters).where(counters.c.key == key))


def _entries(raw: str | None) -> list[float]:
    return [float(at) for at in json.loads(raw)] if raw else []


def _check(key: str, limit: int, expiry: int) -> None:
    check_text(key=key)
    for name, value in (("limit", limit), ("expiry", expiry)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive whole number")

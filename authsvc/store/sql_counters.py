"""Fixed-window counters: the rate-limit state every instance shares through the database."""

import math

import sqlalchemy as sa

from .schema import counters
from .sql_base import check_text
from .sql_base import reading
from .sql_base import upsert
from .sql_base import writing


class CountersMixin:
    _engine: sa.Engine

    def hit(self, key: str, window: int, now: float) -> int:
        """Count one hit on key in the current window; return the window's count so far."""
        start = _window_start(key, window, now)
        with writing(self._engine) as conn:
            insert = upsert(conn, counters).values(key=key, window_start=start, count=1, expires_at=start + window)
            # One statement, so concurrent hits never lose a count: the row
            # lock (PostgreSQL) or the write lock (SQLite) orders them.
            insert = insert.on_conflict_do_update(
                index_elements=[counters.c.key],
                set_={
                    "count": sa.case(
                        (counters.c.window_start == insert.excluded.window_start, counters.c.count + 1),
                        else_=1,
                    ),
                    "window_start": insert.excluded.window_start,
                    "expires_at": insert.excluded.expires_at,
                },
            ).returning(counters.c.count)
            return conn.execute(insert).scalar_one()

    def count(self, key: str, window: int, now: float) -> int:
        """Return the count of the current window without adding to it."""
        start = _window_start(key, window, now)
        query = sa.select(counters.c.count).where(counters.c.key == key, counters.c.window_start == start)
        with reading(self._engine) as conn:
            return conn.execute(query).scalar() or 0

    def reset_counter(self, key: str) -> None:
        """Forget a key's count (a successful login clears its failures)."""
        check_text(key=key)
        with writing(self._engine) as conn:
            conn.execute(sa.delete(counters).where(counters.c.key == key))


def _window_start(key: str, window: int, now: float) -> int:
    check_text(key=key)
    if isinstance(window, bool) or not isinstance(window, int) or window <= 0:
        raise ValueError("window must be a positive number of seconds")
    return math.floor(now / window) * window
